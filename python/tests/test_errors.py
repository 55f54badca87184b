"""Bad input gets one clear AnomalyDinoError (status name + one-line reason), never a crash."""
import os
import subprocess
import sys

import numpy as np
import pytest

import anomalydino as ad
from conftest import DATA, PKG_ROOT, TINY


@pytest.fixture(scope="module")
def small_bank(tiny):
    rng = np.random.default_rng(1)
    refs = [rng.integers(0, 256, (56, 70, 3), dtype=np.uint8) for _ in range(2)]
    return ad.Bank.fit(tiny, refs, resolution=0, rotate=False)


def _raises(status, fn, *a, match=None, **k):
    with pytest.raises(ad.AnomalyDinoError) as ei:
        fn(*a, **k)
    e = ei.value
    print(f"{status}: {e}")
    assert e.status == status, f"expected {status}, got {e}"
    assert str(e).startswith(status + ": ") and e.message and "\n" not in str(e)
    if match:
        assert match in e.message, e.message
    return e


IMG = np.zeros((56, 56, 3), dtype=np.uint8)


@pytest.mark.parametrize("bad,match", [
    (IMG.astype(np.float32), "dtype float32"),
    (IMG.astype(np.uint16), "dtype uint16"),
    (IMG.astype(bool), "dtype bool"),
    (IMG[..., 0], "grey"),
    (np.zeros((56, 56, 4), np.uint8), "RGBA"),
    (np.zeros((3, 56, 56), np.uint8), "channels first"),
    (np.zeros((2, 56, 56, 3), np.uint8), "shape (2, 56, 56, 3)"),
    (np.zeros((0, 56, 3), np.uint8), "empty"),
    ("not an image", "dtype <U12"),
])
def test_bad_image_refused(tiny, small_bank, bad, match):
    _raises("AD_E_ARG", tiny.features, bad, match=match)
    _raises("AD_E_ARG", small_bank.predict, bad, match=match)
    _raises("AD_E_ARG", small_bank.add, bad, match=match)


def test_too_small_image_is_the_librarys_error(tiny):
    e = _raises("AD_E_ARG", tiny.features, np.zeros((10, 10, 3), np.uint8), resolution=0)
    assert e.description == "invalid argument"


def test_non_contiguous_is_copied(tiny, small_bank):
    rng = np.random.default_rng(2)
    big = rng.integers(0, 256, (112, 140, 3), dtype=np.uint8)
    views = {"every other column": big[:, ::2], "flipped": big[::-1], "BGR": big[..., ::-1],
             "fortran": np.asfortranarray(big), "transposed": big.transpose(1, 0, 2)}
    for name, v in views.items():
        assert not v.flags.c_contiguous, name
        a, _ = tiny.features(v, resolution=0)
        b, _ = tiny.features(np.ascontiguousarray(v), resolution=0)
        assert np.array_equal(a, b), name
        ra, rb = small_bank.predict(v), small_bank.predict(np.ascontiguousarray(v))
        assert ra.score == rb.score and np.array_equal(ra.grid, rb.grid), name
    # the caller's array is not modified
    copy = big.copy()
    tiny.features(big[:, ::2], resolution=0)
    assert np.array_equal(big, copy)


def test_nested_lists_are_refused(tiny):
    # nested lists become int64 arrays: refused with the dtype named, not silently cast
    _raises("AD_E_ARG", tiny.features, IMG.tolist(), match="dtype int64")


def test_missing_and_corrupt_weights(tmp_path):
    _raises("AD_E_IO", ad.Model, tmp_path / "nope.safetensors", match="nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    _raises("AD_E_FORMAT", ad.Model, bad)
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(open(TINY, "rb").read()[:5000])
    _raises("AD_E_FORMAT", ad.Model, trunc)
    e = _raises("AD_E_ARG", ad.Model, TINY, threads="4")
    assert "threads" in e.message


def test_corrupt_bank_files(tmp_path, small_bank):
    good = tmp_path / "b.adbank"
    small_bank.save(good)
    data = good.read_bytes()
    _raises("AD_E_IO", ad.Bank.load, tmp_path / "none.adbank")
    cases = {"truncated": data[: len(data) // 2], "empty": b"", "header only": data[:20],
             "flipped byte": data[:200] + bytes([data[200] ^ 0x40]) + data[201:],
             "not a bank": b"P5\n2 2\n255\n" + b"\0" * 4, "extra bytes": data + b"\0"}
    for name, blob in cases.items():
        p = tmp_path / "bad.adbank"
        p.write_bytes(blob)
        e = _raises("AD_E_FORMAT", ad.Bank.load, p)
        assert str(p) in e.message, f"{name}: the message names the file"
    assert ad.Bank.load(good).rows == small_bank.rows


def test_bank_of_other_weights(tmp_path, small_bank):
    other = ad.Model(os.path.join(DATA, "dinov2", "tiny_reg.safetensors"), threads=1)
    p = tmp_path / "b.adbank"
    small_bank.save(p)
    _raises("AD_E_MISMATCH", ad.Bank.load, p, other)
    b = ad.Bank.load(p)
    _raises("AD_E_MISMATCH", b.attach, other)
    _raises("AD_E_MISMATCH", b.predict, IMG, context=other.context(1))


def test_bank_without_model(tmp_path, small_bank):
    p = tmp_path / "b.adbank"
    small_bank.save(p)
    b = ad.Bank.load(p)
    _raises("AD_E_ARG", b.predict, IMG, match="no model")


def test_bad_settings(tiny, small_bank):
    _raises("AD_E_ARG", ad.Bank, tiny, knn=0)
    _raises("AD_E_ARG", ad.Bank, tiny, resolution=-1)
    _raises("AD_E_ARG", ad.Bank, tiny, resolution=448.0)
    _raises("AD_E_ARG", ad.Bank.fit, tiny, [], rotate=False, match="no reference")
    for thr in ("median", "quantile:x", "quantile:1.5", ("q", 0.5), float("nan")):
        _raises("AD_E_ARG", ad.Bank.fit, tiny, [IMG, IMG], resolution=0, rotate=False,
                threshold=thr)
    for thr in (0.3, None):
        _raises("AD_E_ARG", ad.Bank.fit, tiny, [IMG, IMG], resolution=0, rotate=False,
                threshold=thr, calibration=[IMG], match="calibration images are only used")
    _raises("AD_E_ARG", small_bank.calibrate_loo, "max", context="ctx")
    _raises("AD_E_ARG", tiny.features, IMG, resolution=-5)
    _raises("AD_E_ARG", ad.Bank, "weights.pth")


def test_fixed_and_no_threshold(tiny):
    refs = [np.full((56, 56, 3), v, np.uint8) for v in (10, 200)]
    b = ad.Bank.fit(tiny, refs, resolution=0, rotate=False, threshold=0.25)
    assert b.threshold == 0.25
    r = b.predict(np.full((56, 56, 3), 90, np.uint8))
    assert r.verdict == ("NG" if r.score > 0.25 else "OK")
    b = ad.Bank.fit(tiny, refs, resolution=0, rotate=False, threshold=None)
    assert b.threshold is None and b.predict(refs[0]).verdict is None


def test_closed_handles(tiny, tmp_path):
    m = ad.Model(TINY, threads=1)
    ctx = m.context()
    bank = ad.Bank.fit(m, [IMG, IMG + 1], resolution=0, rotate=False)
    m.close()
    _raises("AD_E_ARG", m.features, IMG, match="Model is closed")
    # the context keeps the weights alive: still usable
    assert bank.predict(IMG, context=ctx).grid.shape == (4, 4)
    ctx.close()
    _raises("AD_E_ARG", bank.predict, IMG, context=ctx, match="Context is closed")
    with bank:
        pass
    _raises("AD_E_ARG", bank.save, tmp_path / "x.adbank", match="Bank is closed")
    assert repr(bank) == "<anomalydino.Bank closed>"


def test_save_to_bad_path(small_bank, tmp_path):
    _raises("AD_E_IO", small_bank.save, tmp_path / "no" / "such" / "dir" / "b.adbank")


def test_anomaly_map_bad_args():
    g = np.zeros((4, 4))
    _raises("AD_E_ARG", ad.anomaly_map, g, 0, 10)
    _raises("AD_E_ARG", ad.anomaly_map, g, 10, -3)
    _raises("AD_E_ARG", ad.anomaly_map, np.zeros(16), 10, 10, match="shape (16,)")
    _raises("AD_E_ARG", ad.anomaly_map, np.zeros((4, 4), np.int32), 10, 10, match="dtype int32")
    _raises("AD_E_ARG", ad.anomaly_map, np.zeros((0, 4)), 10, 10)
    # a float32 grid (as the CLI writes) is widened exactly
    g32 = np.random.default_rng(0).random((5, 7)).astype(np.float32)
    assert np.array_equal(ad.anomaly_map(g32, 30, 20), ad.anomaly_map(g32.astype(np.float64), 30, 20))


def test_metrics_bad_args():
    _raises("AD_E_ARG", ad.metrics_image, [0, 0, 0], [0.1, 0.2, 0.3], match="both classes")
    _raises("AD_E_ARG", ad.metrics_image, [0, 1], [0.1, float("nan")], match="not finite")
    _raises("AD_E_ARG", ad.metrics_image, [0, 1, 2], [0.1, 0.2, 0.3], match="labels[2] is 2")
    _raises("AD_E_ARG", ad.metrics_image, [0, 1], [0.1], match="one length")
    _raises("AD_E_ARG", ad.metrics_image, [0.0, 1.0], [0.1, 0.2], match="dtype float64")
    m = np.zeros((4, 4), np.float32)
    _raises("AD_E_ARG", ad.pixel_metrics, [m], [None, None], match="1 maps but 2 masks")
    _raises("AD_E_ARG", ad.pixel_metrics, [m], [np.zeros((3, 4))], match="image 0")
    _raises("AD_E_ARG", ad.pixel_metrics, [m], [None])  # normal pixels only
    bad = m.copy()
    bad[0, 0] = np.inf
    _raises("AD_E_ARG", ad.pixel_metrics, [bad], [np.ones((4, 4))])


def test_zeroshot_bad_args(tiny):
    _raises("AD_E_ARG", ad.zeroshot, tiny, [IMG], match="at least 2")
    _raises("AD_E_ARG", ad.zeroshot, tiny, [IMG, IMG.astype(np.float32)], match="images[1]")
    _raises("AD_E_ARG", ad.zeroshot, tiny, [IMG, np.zeros((5, 5, 3), np.uint8)], resolution=0,
            match="images[1]")


def _run_import(env_lib, tmp_path):
    code = ("import anomalydino as ad\n"
            "try:\n ad.Model('x')\n"
            "except ad.AnomalyDinoError as e:\n print(e.status, '|', e.message)\n")
    env = dict(os.environ, ANOMALYDINO_LIB=env_lib, PYTHONPATH=PKG_ROOT)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=60)


def test_library_lookup_env_var(tmp_path):
    p = _run_import(str(tmp_path / "libnothere.so"), tmp_path)
    assert p.returncode == 0, p.stderr
    print(p.stdout.strip())
    assert p.stdout.startswith("AD_E_IO | ANOMALYDINO_LIB=") and "libnothere.so" in p.stdout
    real = ad.library_path()
    p = _run_import(os.path.dirname(real), tmp_path)  # a folder holding libanomalydino.so.0
    assert p.stdout.startswith("AD_E_IO | x: cannot open"), p.stdout + p.stderr
