"""No leak over 1,000 predictions: the RSS stays flat, and so do the bytes malloc has handed
out (glibc mallinfo2, which sees a leak of a few hundred bytes per call that the RSS hides).
Not run in the sanitizer build: ASan's quarantine grows the RSS and its malloc has no
mallinfo (its own leak checker covers the C tests there)."""
import ctypes

import numpy as np
import pytest

import anomalydino as ad


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]


_libc = ctypes.CDLL(None)
_libc.mallinfo2.restype = _Mallinfo2


def malloc_in_use():
    """Bytes handed out by malloc and not freed (glibc mallinfo2: heap + mmap'd chunks)."""
    mi = _libc.mallinfo2()
    return mi.uordblks + mi.hblkhd


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.fixture(scope="module")
def bank1(tiny):
    rng = np.random.default_rng(5)
    refs = [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(2)]
    with ad.Bank.fit(tiny, refs, resolution=0, rotate=False, mask_test=True) as b:
        yield b


def test_rss_flat_over_1000_predictions(tiny, bank1):
    rng = np.random.default_rng(6)
    imgs = [rng.integers(0, 256, (112, 112, 3), dtype=np.uint8) for _ in range(4)]
    ctx = tiny.context(1)

    def work(n):
        for i in range(n):
            r = bank1.predict(imgs[i % 4], context=ctx)   # masked: PCA mask path too
            ad.anomaly_map(r.grid, 112, 112)
            assert r.grid.shape == (8, 8)

    work(200)  # warm-up: caches, allocator arenas, numpy pools
    rss0, heap0 = rss_bytes(), malloc_in_use()
    assert heap0 > 2**20, "mallinfo2 reports no heap: the check would be blind"
    work(1000)
    rss1, heap1 = rss_bytes(), malloc_in_use()
    print(f"1000 predictions: RSS {rss0 / 2**20:.2f} -> {rss1 / 2**20:.2f} MiB "
          f"({(rss1 - rss0) / 1024:+.0f} KiB), malloc in use {(heap1 - heap0):+d} bytes")
    # a leaked grid (512 B) or mask (64 B) per call would add 500 KiB / 62 KiB
    assert heap1 - heap0 < 32 * 1024
    assert rss1 - rss0 < 2 * 2**20


def test_features_and_fit_do_not_leak(tiny):
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (84, 84, 3), dtype=np.uint8)
    ctx = tiny.context(1)

    def work(n):
        for _ in range(n):
            tiny.features(img, resolution=0, context=ctx)
        for _ in range(n // 10):
            with ad.Bank.fit(tiny, [img, img[::-1]], resolution=0, rotate=False, context=ctx):
                pass
        ad.zeroshot(tiny, [img, img[:, ::-1]], resolution=0, mask=True, context=ctx)

    work(100)
    heap0 = malloc_in_use()
    work(300)
    heap1 = malloc_in_use()
    print(f"300 features + 30 fits + zeroshot: malloc in use {heap1 - heap0:+d} bytes")
    assert heap1 - heap0 < 32 * 1024
