"""Banks cross-load between Python and the CLI; the anomalib-style adapter."""

import numpy as np
import pytest

import anomalydino as ad
from conftest import CLOCK, THREADS, TINY, cli, cli_json, load_png, same_as_cli_json


def _cli_scores(bank_path, images, *extra):
    doc = cli_json("predict", "-m", TINY, "-b", bank_path, "--threads", THREADS, *extra, *images)
    assert not doc["failures"]
    return doc


def test_python_bank_in_cli(tmp_path, tiny, samples):
    good, test = samples
    bank = ad.Bank.fit(tiny, [load_png(p) for p in good[:3]], resolution=224, rotate=False,
                       mask_test=True, knn=3, threshold="quantile:0.9")
    p = tmp_path / "py.adbank"
    bank.save(p)
    doc = _cli_scores(p, test)
    s = doc["settings"]
    assert (s["resolution"], s["mask"], s["knn"]) == (224, True, 3)
    assert same_as_cli_json(bank.threshold, s["threshold"])
    for png, row in zip(test, doc["results"]):
        r = bank.predict(load_png(png))
        assert same_as_cli_json(r.score, row["score"]) and r.verdict == row["verdict"], png


def test_cli_bank_in_python(tmp_path, tiny, samples):
    good, test = samples
    p = tmp_path / "cli.adbank"
    out = cli("fit", "-m", TINY, "-o", p, "--resolution", 224, "--knn", 2, "--mask-test",
              "--threads", THREADS, *good).stdout
    bank = ad.Bank.load(p, tiny)
    assert bank.params == ad.BankParams(224, True, False, True, 2)
    assert bank.n_images == 5 and bank.rows == 5 * 8 * 16 * 16
    assert f"{bank.threshold:.6f}" in out
    # the references and threshold history the CLI recorded
    assert bank.references == [ad.Reference(i, 8, CLOCK, g) for i, g in enumerate(good)]
    (h,) = bank.threshold_history
    assert (h.threshold, h.rule, h.source, h.n_refs, h.time) == \
        (bank.threshold, "max", "leave-one-out", 5, CLOCK)
    assert len(h.scores) == 5 and max(h.scores) == bank.threshold
    doc = _cli_scores(p, test)
    for png, row in zip(test, doc["results"]):
        r = bank.predict(load_png(png))
        assert same_as_cli_json(r.score, row["score"]) and r.verdict == row["verdict"], png
    # and a bank loaded without a model predicts with an explicit context
    r0 = ad.Bank.load(p).predict(load_png(test[0]), context=tiny.context(THREADS))
    assert same_as_cli_json(r0.score, doc["results"][0]["score"])
    # a re-saved bank is the same file
    bank.save(tmp_path / "again.adbank")
    assert (tmp_path / "again.adbank").read_bytes() == p.read_bytes()


def test_names_clock_and_history_round_trip(tmp_path, tiny):
    rng = np.random.default_rng(11)
    refs = [rng.integers(0, 256, (56, 70, 3), dtype=np.uint8) for _ in range(3)]
    b = ad.Bank.fit(tiny, refs, resolution=0, rotate=False, names=["a.png", "b", "c"],
                    clock=1000)
    b.set_clock(2000)
    b.add(refs[0][::-1], name="d")
    b.calibrate_loo("quantile:0.5")
    b.calibrate_scores([0.1, 0.3], "max")
    b.save(tmp_path / "b.adbank")
    c = ad.Bank.load(tmp_path / "b.adbank", tiny)
    assert c.references == [ad.Reference(0, 1, 1000, "a.png"), ad.Reference(1, 1, 1000, "b"),
                            ad.Reference(2, 1, 1000, "c"), ad.Reference(3, 1, 2000, "d")]
    hist = c.threshold_history
    assert [(t.rule, t.source, t.n_refs, t.time) for t in hist] == [
        ("max", "leave-one-out", 3, 1000), ("quantile:0.5", "leave-one-out", 4, 2000),
        ("max", "scores", 4, 2000)]
    assert hist[-1].scores == (0.1, 0.3) and c.threshold == 0.3
    with pytest.raises(ad.AnomalyDinoError):
        ad.Bank.fit(tiny, refs, resolution=0, rotate=False, names=["x"])
    with pytest.raises(ad.AnomalyDinoError):
        b.set_clock(-1)


def test_add_features_matches_add_image(tiny):
    rng = np.random.default_rng(3)
    refs = [rng.integers(0, 256, (84, 98, 3), dtype=np.uint8) for _ in range(2)]
    a = ad.Bank.fit(tiny, refs, resolution=0, rotate=False, threshold=None)
    b = ad.Bank(tiny, resolution=0, rotate=False)
    for i, im in enumerate(refs):
        patch, _ = tiny.features(im, resolution=0)
        b.add_features(patch, image_id=i)
    assert a.rows == b.rows == 2 * 6 * 7
    t = rng.integers(0, 256, (84, 98, 3), dtype=np.uint8)
    assert np.array_equal(a.predict(t).grid, b.predict(t).grid)
    c = ad.Bank(tiny, resolution=0, rotate=False)
    keep = np.zeros((6, 7), bool)
    keep[:3] = True
    c.add_features(tiny.features(refs[0], resolution=0)[0], keep=keep)
    assert c.rows == 21


@pytest.fixture(scope="module")
def fitted(tiny):
    rng = np.random.default_rng(4)
    refs = [rng.integers(0, 256, (70, 84, 3), dtype=np.uint8) for _ in range(3)]
    return ad.Bank.fit(tiny, refs, resolution=0, rotate=False)


def test_adapter_matches_predict(fitted):
    rng = np.random.default_rng(10)
    batch = rng.integers(0, 256, (3, 70, 84, 3), dtype=np.uint8)
    adapter = ad.AnomalibAdapter(fitted)
    out = adapter(batch)
    assert len(out) == 3 and set(out.keys()) == {"pred_score", "pred_label", "anomaly_map",
                                                 "pred_mask"}
    assert out.anomaly_map.shape == (3, 70, 84) and out.anomaly_map.dtype == np.float32
    thr = fitted.threshold
    for i in range(3):
        r = fitted.predict(batch[i])
        assert out.pred_score[i] == r.score
        assert out["pred_label"][i] == (r.verdict == "NG")
        assert np.array_equal(out.anomaly_map[i], ad.anomaly_map(r.grid, 84, 70))
        assert np.array_equal(out.pred_mask[i], out.anomaly_map[i] > thr)
    # anomalib's tensor layout: float (N, 3, H, W) in [0, 1], in a dict
    chw = batch.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    out2 = adapter({"image": chw})
    assert np.array_equal(out2.pred_score, out.pred_score)
    # images of different sizes: a list of maps
    out3 = adapter([batch[0], batch[1][:56, :70]])
    assert isinstance(out3.anomaly_map, list) and out3.anomaly_map[1].shape == (56, 70)
    assert out3.pred_score[0] == out.pred_score[0]


def test_adapter_without_threshold_and_bad_batches(tiny, fitted):
    img = np.zeros((70, 84, 3), np.uint8)
    b = ad.Bank.fit(tiny, [img, img + 7], resolution=0, rotate=False, threshold=None)
    out = ad.AnomalibAdapter(b)(img[None])
    assert out.pred_label is None and out.pred_mask is None and out.pred_score.shape == (1,)
    a = ad.AnomalibAdapter(fitted)
    for bad in (np.zeros((2, 3, 10, 10), np.float32) + 2.0, np.zeros((2, 5), np.uint8), [],
                {"img": img}, np.zeros((1, 70, 84, 3), np.int16)):
        with pytest.raises(ad.AnomalyDinoError) as e:
            a(bad)
        assert e.value.status == "AD_E_ARG"
        print(e.value)


def test_coreset_bank_equals_cli(tmp_path, tiny, samples):
    good, test = samples
    p = tmp_path / "cli.adbank"
    cli("fit", "-m", TINY, "-o", p, "--resolution", 224, "--coreset", 0.25, "--threads", THREADS,
        *good[:3])
    bank = ad.Bank.fit(tiny, [load_png(g) for g in good[:3]], resolution=224, coreset=0.25,
                       names=good[:3], clock=CLOCK)
    full = 3 * 8 * 16 * 16
    assert bank.rows == full // 4 and bank.coreset_setting == (0.25, full)
    bank.save(tmp_path / "py.adbank")
    assert (tmp_path / "py.adbank").read_bytes() == p.read_bytes()
    doc = _cli_scores(p, test[:2])
    for png, row in zip(test[:2], doc["results"]):
        assert same_as_cli_json(bank.predict(load_png(png)).score, row["score"]), png
    with pytest.raises(ad.AnomalyDinoError) as e:
        bank.coreset(0.5)  # once per bank
    print(e.value)
    with pytest.raises(ad.AnomalyDinoError):
        ad.Bank(tiny).coreset(-1.0)


def test_nearest_explains_the_grid(tiny, fitted):
    img = np.random.default_rng(12).integers(0, 256, (70, 84, 3), dtype=np.uint8)
    r = fitted.predict(img)
    worst = int(np.argmax(r.grid))
    n = fitted.nearest(img, worst)
    assert (n.patch, n.grid_h, n.grid_w) == (worst, 5, 6)
    assert (n.test_y, n.test_x) == divmod(worst, 6) and not n.masked
    assert 0 <= n.ref_index < fitted.n_images and n.view == 0 and n.angle_deg == 0.0
    assert 0 <= n.ref_y < 5 and 0 <= n.ref_x < 6
    print(f"nearest: distance {n.distance!r} vs grid {r.grid.flat[worst]!r}")
    assert abs(n.distance - r.grid.flat[worst]) <= 1e-5
    with pytest.raises(ad.AnomalyDinoError) as e:
        fitted.nearest(img, 30)
    assert e.value.status == "AD_E_ARG"
