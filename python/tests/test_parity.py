"""Python results equal the command-line tool's bit for bit: features, grids, scores, maps, on
the bundled samples and on the golden data (and stay within the golden tolerances)."""
import json
import os

import numpy as np
import pytest

import anomalydino as ad
from conftest import (CLOCK, DATA, THREADS, TINY, assert_bit_equal, cli, cli_json, load_mask, load_png,
                      report_diff, same_as_cli_json)

DINO = os.path.join(DATA, "dinov2")
SIZES = ["224x224", "364x252", "448x448", "448x672", "518x518"]
# The sanitizer build (ctest sets AD_PY_SANITIZED=1 there) runs every test on fewer cases: it
# is there for memory errors across the ctypes boundary, and runs several times slower.
SANITIZED = os.environ.get("AD_PY_SANITIZED") == "1"
MODELS = ["tiny", "tiny_swiglu"] if SANITIZED else ["tiny", "tiny_reg", "tiny_swiglu"]
FORMATS = ["safetensors"] if SANITIZED else ["safetensors", "pth"]
SEEDS = ["seed0"] if SANITIZED else ["seed0", "seed2"]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_features_golden_inputs(tmp_path, name, fmt):
    weights = os.path.join(DINO, f"{name}.{fmt}")
    with ad.Model(weights, threads=THREADS) as m:
        for size in SIZES:
            png = os.path.join(DINO, f"input_{size}.png")
            out, cls_out = tmp_path / f"{size}.npy", tmp_path / f"{size}_cls.npy"
            cli("features", "-m", weights, png, "-o", out, "--cls", cls_out, "--no-resize",
                "--threads", THREADS)
            patch, cls = m.features(load_png(png), resolution=0)
            h, w = (int(v) for v in size.split("x"))
            assert patch.shape == (h // 14, w // 14, m.info.dim)
            flat = patch.reshape(-1, m.info.dim)
            assert_bit_equal(f"{name}.{fmt} {size} patch vs CLI", flat, np.load(out))
            assert_bit_equal(f"{name}.{fmt} {size} cls vs CLI", cls, np.load(cls_out))
            gold = np.load(os.path.join(DINO, f"{name}_{size}_patch.npy"))
            assert report_diff(f"{name}.{fmt} {size} patch vs golden", flat, gold) <= 1e-3


def test_features_samples_resized(tmp_path, tiny, samples):
    good, test = samples
    for png in (good[0], test[3]):
        for res in (448, 224):
            out = tmp_path / "f.npy"
            cli("features", "-m", TINY, png, "-o", out, "--resolution", res, "--threads", THREADS)
            patch, _ = tiny.features(load_png(png), resolution=res)
            assert_bit_equal(f"{os.path.basename(png)} @{res}", patch.reshape(-1, patch.shape[2]),
                             np.load(out))


def _compare_predict(tmp_path, model, bank, images, bank_path, tag, mask=None):
    """CLI predict with bank_path vs Python bank.predict + anomaly_map on the same images."""
    gdir, mdir = tmp_path / f"{tag}_grids", tmp_path / f"{tag}_maps"
    args = ["predict", "-m", TINY, "-b", bank_path, "--grids", gdir, "--maps", mdir,
            "--threads", THREADS]
    if mask is not None:
        args.append("--mask" if mask else "--no-mask")
    doc = cli_json(*args, *images)
    assert not doc["failures"]
    rows = {r["image"]: r for r in doc["results"]}
    out = {}
    for png in images:
        img = load_png(png)
        r = bank.predict(img, mask)
        stem = os.path.splitext(os.path.basename(png))[0]
        c = rows[str(png)]
        # the CLI's JSON carries the score as cJSON prints it (15 or 17 digits): the same text
        assert same_as_cli_json(r.score, c["score"]), \
            f"{tag} {stem}: score {r.score!r} vs CLI {c['score']!r}"
        assert r.verdict == c["verdict"], f"{tag} {stem}: verdict {r.verdict} vs {c['verdict']}"
        assert_bit_equal(f"{tag} {stem} grid", r.grid.astype(np.float32),
                         np.load(gdir / f"{stem}.npy"))
        amap = ad.anomaly_map(r.grid, img.shape[1], img.shape[0])
        assert_bit_equal(f"{tag} {stem} map", amap, np.load(mdir / f"{stem}.npy"))
        assert ad.score_top1p(r.grid) == r.score
        out[stem] = (r, amap)
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_pipeline_golden(tmp_path, tiny, seed):
    d = os.path.join(DATA, "pipeline", seed)
    man = json.load(open(os.path.join(d, "manifest.json")))
    ref = os.path.join(d, man["refs"][0])
    for name, s in man["settings"].items():
        res, rot, mask = s["resolution"], s["rotation"], s["mask_test_images"]
        cli_bank = tmp_path / f"{name}.cli.adbank"
        cli("fit", "-m", TINY, "-o", cli_bank, "--resolution", res,
            "--rotate" if rot else "--no-rotate", "--mask-test" if mask else "--no-mask-test",
            "--threads", THREADS, ref)
        with pytest.warns(UserWarning, match="no decision threshold"):
            bank = ad.Bank.fit(tiny, [load_png(ref)], resolution=res, rotate=rot, mask_test=mask,
                               names=[ref], clock=CLOCK)
        assert bank.rows == s["bank_rows"]
        py_bank = tmp_path / f"{name}.py.adbank"
        bank.save(py_bank)
        assert py_bank.read_bytes() == cli_bank.read_bytes(), f"{name}: bank files differ"
        images = [os.path.join(d, c["image"]) for c in s["cases"]]
        got = _compare_predict(tmp_path, tiny, bank, images, cli_bank, name)
        tol = 2e-3 if rot else 1e-4
        for c in s["cases"]:
            r, amap = got[os.path.splitext(c["image"])[0]]
            assert abs(r.score - c["score"]) <= tol, f"{name} {c['image']}: score vs golden"
            g = np.load(os.path.join(d, c["grid"]))
            assert report_diff(f"{name} {c['image']} grid vs golden", r.grid, g) <= tol
            if "map" in c:
                gm = np.load(os.path.join(d, c["map"]))
                assert report_diff(f"{name} {c['image']} map vs golden", amap, gm) <= 2e-3
            if mask:
                gk = np.load(os.path.join(d, c["grid"].replace("_grid", "_mask")))
                assert np.array_equal(r.keep, gk.astype(bool)), f"{name} {c['image']}: mask"


def test_samples_fit_predict(tmp_path, tiny, samples):
    good, test = samples
    cli_bank = tmp_path / "cli.adbank"
    cli("fit", "-m", TINY, "-o", cli_bank, "--threads", THREADS, *good)
    bank = ad.Bank.fit(tiny, [load_png(p) for p in good], names=good, clock=CLOCK)
    assert bank.threshold is not None and bank.n_images == 5 and bank.rows == 5 * 8 * 32 * 32
    bank.save(tmp_path / "py.adbank")
    assert (tmp_path / "py.adbank").read_bytes() == cli_bank.read_bytes()
    got = _compare_predict(tmp_path, tiny, bank, test, cli_bank, "samples")
    verdicts = {k: v[0].verdict for k, v in got.items()}
    assert set(verdicts.values()) <= {"OK", "NG"}
    _compare_predict(tmp_path, tiny, bank, test, cli_bank, "samples_mask1", True)


def test_calibration_and_quantile_match_cli(tmp_path, tiny, samples):
    good, test = samples
    cli_bank = tmp_path / "cli.adbank"
    cli("fit", "-m", TINY, "-o", cli_bank, "--threads", THREADS, "--no-rotate",
        "--calibrate", test[0], "--calibrate", test[1], "--threshold-rule", "quantile:0.5",
        *good[:2])
    bank = ad.Bank.fit(tiny, [load_png(p) for p in good[:2]], rotate=False,
                       threshold="quantile:0.5", calibration=[load_png(p) for p in test[:2]],
                       names=good[:2], clock=CLOCK)
    bank.save(tmp_path / "py.adbank")
    assert (tmp_path / "py.adbank").read_bytes() == cli_bank.read_bytes()
    s = [bank.predict(load_png(p)).score for p in test[:2]]
    assert bank.threshold == float(np.quantile(s, 0.5))


def test_zeroshot_golden(tmp_path, tiny):
    d = os.path.join(DATA, "zeroshot")
    man = json.load(open(os.path.join(d, "manifest.json")))
    images = [os.path.join(d, c["image"]) for c in man["cases"]]
    gdir, mdir = tmp_path / "g", tmp_path / "m"
    doc = cli_json("zeroshot", "-m", TINY, "--resolution", man["resolution"], "--grids", gdir,
                   "--maps", mdir, "--threads", THREADS, *images)
    rows = {r["image"]: r["score"] for r in doc["results"]}
    imgs = [load_png(p) for p in images]
    res = ad.zeroshot(tiny, imgs, resolution=man["resolution"], mask=man["mask"])
    worst = 0.0
    for p, img, r, c in zip(images, imgs, res, man["cases"]):
        stem = os.path.splitext(os.path.basename(p))[0]
        assert same_as_cli_json(r.score, rows[p]), \
            f"{stem}: zero-shot score {r.score!r} vs CLI {rows[p]!r}"
        assert_bit_equal(f"zeroshot {stem} grid", r.grid.astype(np.float32),
                         np.load(gdir / f"{stem}.npy"))
        assert_bit_equal(f"zeroshot {stem} map", ad.anomaly_map(r.grid, img.shape[1],
                                                                 img.shape[0]),
                         np.load(mdir / f"{stem}.npy"))
        worst = max(worst, abs(r.score - c["score"]))
    print(f"zeroshot scores vs golden: max |diff| {worst:.3g}")
    assert worst <= 2e-3


def test_zeroshot_masked_matches_cli(tmp_path, tiny, samples):
    good, test = samples
    images = good[:2] + test[:2]
    doc = cli_json("zeroshot", "-m", TINY, "--resolution", 224, "--mask", "--threads", THREADS,
                   *images)
    res = ad.zeroshot(tiny, [load_png(p) for p in images], resolution=224, mask=True)
    assert len(res) == len(doc["results"]) == 4
    for r, c in zip(res, doc["results"]):
        assert same_as_cli_json(r.score, c["score"]), f"{c['image']}: {r.score!r} vs {c['score']!r}"


def _metric_cases(kind):
    root = os.path.join(DATA, "metrics")
    return sorted(c for c in os.listdir(root) if c.startswith(kind))


def _read_csv(path):
    import csv
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("case", _metric_cases("image_"))
def test_metrics_image_golden(case):
    d = os.path.join(DATA, "metrics", case)
    rows = _read_csv(os.path.join(d, "image_scores.csv"))
    exp = json.load(open(os.path.join(d, "expected.json")))
    m = ad.metrics_image([int(r["label"]) for r in rows], [float(r["score"]) for r in rows])
    c = json.loads(cli("metrics", os.path.join(d, "image_scores.csv")).stdout)
    for k, v in (("auroc", m.auroc), ("ap", m.ap), ("f1max", m.f1max)):
        assert v == c[f"image_{k}"], f"{case} {k}: {v!r} vs CLI {c['image_' + k]!r}"
        print(f"{case} image_{k}: |diff| vs golden {abs(v - exp['image_' + k]):.3g}")
        assert abs(v - exp[f"image_{k}"]) <= 1e-6


@pytest.mark.parametrize("case", _metric_cases("pixel_"))
def test_pixel_metrics_golden(case):
    d = os.path.join(DATA, "metrics", case)
    rows = _read_csv(os.path.join(d, "image_scores.csv"))
    exp = json.load(open(os.path.join(d, "expected.json")))
    maps = [np.load(os.path.join(d, r["map"])) for r in rows]
    masks = [load_mask(os.path.join(d, r["mask"])) if r["mask"] else None for r in rows]
    m = ad.pixel_metrics(maps, masks)
    c = json.loads(cli("metrics", os.path.join(d, "image_scores.csv"), "--threads", 1).stdout)
    for k, v in (("auroc", m.auroc), ("f1max", m.f1max), ("aupro", m.aupro)):
        assert v == c[f"pixel_{k}"], f"{case} {k}: {v!r} vs CLI {c['pixel_' + k]!r}"
        tol = 1e-5 if k == "aupro" else 1e-6
        print(f"{case} pixel_{k}: |diff| vs golden {abs(v - exp['pixel_' + k]):.3g}")
        assert abs(v - exp[f"pixel_{k}"]) <= tol





def test_features_layers_match_cli(tmp_path, tiny, samples):
    png = samples[0][1]
    img = load_png(png)
    for norm in (True, False):
        out, cls_out = tmp_path / f"l{norm}.npy", tmp_path / f"c{norm}.npy"
        cli("features", "-m", TINY, png, "-o", out, "--cls", cls_out, "--layers", "0,-1",
            "--resolution", 224, "--threads", THREADS, *([] if norm else ["--no-norm"]))
        got = tiny.features_layers(img, [0, -1], resolution=224, norm=norm)
        assert len(got) == 2
        for (patch, cls), k in zip(got, (0, 1)):
            assert_bit_equal(f"layer {k} norm={norm} patch", patch.reshape(-1, patch.shape[2]),
                             np.load(tmp_path / f"l{norm}_layer{k}.npy"))
            assert_bit_equal(f"layer {k} norm={norm} cls", cls,
                             np.load(tmp_path / f"c{norm}_layer{k}.npy"))
    last, _ = tiny.features(img, resolution=224)
    via_layers = tiny.features_layers(img, [-1], resolution=224)[0][0]
    assert via_layers.shape == (16, 16, 128) and np.array_equal(via_layers, last)
    with pytest.raises(ad.AnomalyDinoError) as e:
        tiny.features_layers(img, [5], resolution=224)
    assert e.value.status == "AD_E_ARG"
    with pytest.raises(ad.AnomalyDinoError):
        tiny.features_layers(img, [], resolution=224)
