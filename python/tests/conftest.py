"""Shared helpers of the Python package's tests.

Environment (set by ctest; defaults for a run from a source checkout with `make build`):
  ANOMALYDINO_LIB   the shared library under test (default: the package's own lookup)
  AD_BIN            the anomalydino command-line tool (default: build/anomalydino)
  AD_TEST_DATA      tests/data
  AD_PY_STRICT      1: a skipped test counts as failed (ctest sets it)
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_ROOT = os.path.dirname(HERE)              # python/
REPO = os.path.dirname(PKG_ROOT)
sys.path.insert(0, PKG_ROOT)                  # the package under test, not an installed copy

DATA = os.environ.get("AD_TEST_DATA") or os.path.join(REPO, "tests", "data")
BIN = os.environ.get("AD_BIN") or os.path.join(REPO, "build", "anomalydino")
SAMPLES = os.path.join(REPO, "samples")
TINY = os.path.join(DATA, "dinov2", "tiny.safetensors")
THREADS = 2   # CLI and Python runs compared bit for bit use the same thread count
CLOCK = 1764547200  # the time banks record (CLI: SOURCE_DATE_EPOCH), for byte-equal bank files

import anomalydino as ad  # noqa: E402


def load_png(path):
    """8-bit RGB PNG as uint8 (H, W, 3) (Pillow, tests only: the package takes arrays)."""
    from PIL import Image
    with Image.open(path) as im:
        return np.array(im.convert("RGB"), dtype=np.uint8)


def load_mask(path):
    from PIL import Image
    with Image.open(path) as im:
        return np.array(im.convert("L"), dtype=np.uint8)


def cli(*args, check=True):
    """Run the command-line tool; returns the CompletedProcess (stdout/stderr as text)."""
    env = dict(os.environ, ANOMALYDINO_QUIET="1", OMP_WAIT_POLICY="passive",
               SOURCE_DATE_EPOCH=str(CLOCK))
    p = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, env=env,
                       timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"anomalydino {' '.join(map(str, args))}: exit {p.returncode}\n"
                             f"{p.stderr}")
    return p


def cli_json(*args):
    return json.loads(cli(*args, "--format", "json").stdout)


def cjson_number(d):
    """The text cJSON (the CLI's JSON writer) prints for the double d: %1.15g, or %1.17g when
    the 15 digits read back further than one epsilon (relative) from d; integers as %d."""
    import math
    if math.isnan(d) or math.isinf(d):
        return "null"
    i = max(min(d, 2**31 - 1), -2**31) if d == d else 0
    if d == float(int(i)):
        return "%d" % int(i)
    t = "%1.15g" % d
    back = float(t)
    if not abs(back - d) <= max(abs(back), abs(d)) * sys.float_info.epsilon:
        t = "%1.17g" % d
    return t


def same_as_cli_json(x, cli_value):
    """True if the CLI, printing the double x, writes the number cli_value was parsed from."""
    return float(cjson_number(x)) == cli_value


def report_diff(what, a, b):
    """Print the largest difference of two arrays and where it is; returns it."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"{what}: shapes {a.shape} vs {b.shape}"
    d = np.abs(a - b)
    i = np.unravel_index(int(np.argmax(d)), d.shape) if d.size else ()
    m = float(d.max()) if d.size else 0.0
    print(f"{what}: max |diff| {m:.3g} at {tuple(int(x) for x in i)}")
    return m


def assert_bit_equal(what, a, b):
    a = np.asarray(a)
    b = np.asarray(b)
    assert a.shape == b.shape, f"{what}: shapes {a.shape} vs {b.shape}"
    assert a.dtype == b.dtype, f"{what}: dtypes {a.dtype} vs {b.dtype}"
    m = report_diff(what, a, b)
    same = np.array_equal(a.view(np.uint8), b.view(np.uint8))
    assert same, f"{what}: not bit-identical (max |diff| {m:.3g})"


@pytest.fixture(scope="session")
def tiny():
    with ad.Model(TINY, threads=THREADS) as m:
        yield m


@pytest.fixture(scope="session")
def samples():
    import glob
    good = sorted(glob.glob(os.path.join(SAMPLES, "good", "*.png")))
    test = sorted(glob.glob(os.path.join(SAMPLES, "test", "*.png")))
    assert len(good) == 5 and len(test) == 5, "samples/ changed"
    return good, test


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under AD_PY_STRICT=1 (ctest), a skipped test fails: nothing may pass by not running."""
    outcome = yield
    rep = outcome.get_result()
    if os.environ.get("AD_PY_STRICT") == "1" and rep.skipped:
        rep.outcome = "failed"
        rep.longrepr = f"skipped under AD_PY_STRICT=1: {rep.longrepr}"
