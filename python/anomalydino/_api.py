"""The Python API over libanomalydino: one class per library handle, numpy in and out."""
from __future__ import annotations

import math
import os
import threading
import warnings
from ctypes import POINTER, byref, c_char_p, c_double, c_float, c_int, c_size_t, c_uint8
from dataclasses import dataclass
from typing import (Any, Callable, Iterable, List, NamedTuple, Optional, Sequence, Tuple, TypeVar,
                    Union)

import numpy as np

from . import _lib as _c
from ._lib import AnomalyDinoError, arg_error, check, last_error, lib

__all__ = [
    "AnomalyDinoError", "Model", "ModelInfo", "Context", "Bank", "BankParams", "Result",
    "Reference", "ThresholdRecord", "Nearest", "anomaly_map", "score_top1p", "zeroshot",
    "metrics_image", "pixel_metrics", "PixelEval", "ImageMetrics", "PixelMetrics", "version",
    "library_path",
]

PathLike = Union[str, "os.PathLike[str]"]
ThresholdSpec = Union[None, str, float, Tuple[str, float]]

_VERDICTS = {-1: None, 0: "OK", 1: "NG"}
_H = TypeVar("_H", bound="_Handle")


def version() -> str:
    """The C library's version string (ad_version())."""
    return lib().ad_version().decode()


def library_path() -> str:
    """The path of the loaded libanomalydino (see the package docstring for the lookup order)."""
    return _c.library_path()


class _Owned:
    """Owns one C handle; frees it exactly once, when the last Python reference goes."""

    __slots__ = ("ptr", "_free")

    def __init__(self, ptr: int, free: Callable[[int], None]) -> None:
        self.ptr = ptr
        self._free = free

    def __del__(self) -> None:
        p, self.ptr = self.ptr, None
        if p:
            self._free(p)


class _Handle:
    """Base of the handle classes: close(), context manager, finalizer (via _Owned)."""

    _what = "handle"

    def __init__(self) -> None:
        self._h: Optional[_Owned] = None

    @property
    def _ptr(self) -> int:
        h = self._h
        if h is None or not h.ptr:
            raise arg_error(f"{self._what} is closed")
        return h.ptr

    @property
    def closed(self) -> bool:
        return self._h is None

    def close(self) -> None:
        """Release this object's hold on the C handle. Objects that depend on it (a Context
        or Bank of a Model) keep it alive until they are closed too."""
        self._h = None

    def __enter__(self: _H) -> _H:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------
def _path_bytes(path: PathLike) -> bytes:
    p = os.fspath(path)
    return p.encode() if isinstance(p, str) else p


def _as_image(image: Any, what: str = "image") -> Tuple[_c.ad_image, np.ndarray]:
    """A uint8 (H, W, 3) RGB array as an ad_image viewing it (copied only if not C-contiguous).
    Returns the struct and the array that must stay alive while the struct is used."""
    a = image if isinstance(image, np.ndarray) else np.asarray(image)
    if a.dtype != np.uint8:
        raise arg_error(f"{what}: dtype {a.dtype}, expected uint8 RGB of shape (H, W, 3)")
    if a.ndim != 3 or a.shape[2] != 3:
        hint = ""
        if a.ndim == 2:
            hint = " (grey: np.stack([a] * 3, axis=-1))"
        elif a.ndim == 3 and a.shape[2] == 4:
            hint = " (RGBA: a[..., :3])"
        elif a.ndim == 3 and a.shape[0] == 3:
            hint = " (channels first: a.transpose(1, 2, 0))"
        raise arg_error(f"{what}: shape {a.shape}, expected (H, W, 3) RGB{hint}")
    h, w = a.shape[0], a.shape[1]
    if h == 0 or w == 0:
        raise arg_error(f"{what}: empty image {a.shape}")
    if h > 2**31 - 1 or w > 2**31 - 1:
        raise arg_error(f"{what}: {w} x {h} is too large")
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)  # strided views (crops, flips, channel swaps) are copied
    img = _c.ad_image(int(w), int(h), a.ctypes.data_as(POINTER(c_uint8)))
    return img, a


def _as_grid(grid: Any, what: str = "grid") -> np.ndarray:
    g = np.asarray(grid)
    if g.dtype.kind != "f":
        raise arg_error(f"{what}: dtype {g.dtype}, expected a float array of shape (grid_h, grid_w)")
    if g.ndim != 2 or g.shape[0] == 0 or g.shape[1] == 0:
        raise arg_error(f"{what}: shape {g.shape}, expected a non-empty (grid_h, grid_w) array")
    return np.ascontiguousarray(g, dtype=np.float64)


def _check_size(name: str, v: Any, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise arg_error(f"{name}: expected an int, got {type(v).__name__}")
    v = int(v)
    if v < lo or v > 2**31 - 1:
        raise arg_error(f"{name}: {v} out of range")
    return v


def _copy_out(ptr: Any, n: int, dtype: Any) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=dtype)
    return np.ctypeslib.as_array(ptr, shape=(n,)).copy()


# ---------------------------------------------------------------------------------------------
# Model and Context
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelInfo:
    """What ad_model_get_info() reports about the loaded weights."""
    name: str            # "vits14", "vitb14_reg4", ... or "custom"
    dim: int
    depth: int
    heads: int
    head_dim: int
    ffn_hidden: int
    swiglu: bool
    n_registers: int
    patch_size: int
    pos_grid: int
    pos_interp: str      # "scale_factor" or "antialias"
    format: str          # "pth" or "safetensors"
    dtype: str           # "F32", "F16", "BF16"
    n_params: int
    fingerprint: int     # identity of the weights' values; banks store it

    @property
    def fingerprint_hex(self) -> str:
        return f"{self.fingerprint:016x}"


def _s(b: Optional[bytes]) -> str:
    return b.decode(errors="replace") if b else ""


class Model(_Handle):
    """DINOv2 weights (a hub ``.pth`` checkpoint or a ``model.safetensors``), read-only.

    A model may be shared by any number of threads. Calls that run the network use a Context:
    pass one explicitly (``context=``), or the model creates one per Python thread on demand,
    with ``threads`` OpenMP threads (0 = all cores).

    >>> m = Model("dinov2_vits14_pretrain.pth")
    >>> m.info.dim
    384
    """

    _what = "Model"

    def __init__(self, path: PathLike, threads: int = 0) -> None:
        super().__init__()
        L = lib()
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
            raise arg_error(f"threads: expected an int, got {type(threads).__name__}")
        ptr = L.ad_model_load(_path_bytes(path))
        if not ptr:
            raise last_error()
        self._h = _Owned(ptr, L.ad_model_free)
        self.path = os.fspath(path)
        self.threads = int(threads)
        self._local = threading.local()
        self._info: Optional[ModelInfo] = None

    @property
    def info(self) -> ModelInfo:
        """Architecture, format and identity of the weights."""
        if self._info is None:
            i = lib().ad_model_get_info(self._ptr)
            self._info = ModelInfo(
                name=_s(i.name) or "custom", dim=i.dim, depth=i.depth, heads=i.heads,
                head_dim=i.head_dim, ffn_hidden=i.ffn_hidden, swiglu=bool(i.swiglu),
                n_registers=i.n_registers, patch_size=i.patch_size, pos_grid=i.pos_grid,
                pos_interp="antialias" if i.pos_interp == 1 else "scale_factor",
                format=_s(i.format), dtype=_s(i.dtype), n_params=int(i.n_params),
                fingerprint=int(i.fingerprint))
        return self._info

    def context(self, threads: Optional[int] = None) -> "Context":
        """A new Context for this model (``threads`` defaults to the model's)."""
        return Context(self, self.threads if threads is None else threads)

    def _context(self, context: Optional["Context"]) -> "Context":
        if context is not None:
            if not isinstance(context, Context):
                raise arg_error(f"context: expected a Context, got {type(context).__name__}")
            return context
        self._ptr  # a closed model refuses, even where a context of it is cached
        ctx = getattr(self._local, "ctx", None)
        if ctx is None or ctx.closed:
            ctx = Context(self, self.threads)
            self._local.ctx = ctx
        return ctx

    def close(self) -> None:
        """Release the weights (contexts and banks still holding them keep them alive)."""
        super().close()
        self._local = threading.local()  # drops the per-thread default contexts

    def features(self, image: Any, resolution: int = 448, *,
                 context: Optional["Context"] = None) -> Tuple[np.ndarray, np.ndarray]:
        """DINOv2 features of one image.

        Args:
            image: uint8 RGB array of shape (H, W, 3).
            resolution: smaller edge after Pillow-exact bicubic resizing; 0 keeps the image
                size. The result is then cropped (top-left) to multiples of 14.
        Returns:
            ``(patch, cls)``: patch tokens float32 (grid_h, grid_w, dim) after the final
            LayerNorm, and the CLS token float32 (dim,).
        """
        ctx = self._context(context)
        res = _check_size("resolution", resolution, lo=0)
        img, keep_alive = _as_image(image)
        f = _c.ad_features()
        L = lib()
        check(L.ad_extract_image(ctx._ptr, byref(img), res, byref(f)))
        try:
            n = f.grid_h * f.grid_w
            patch = _copy_out(f.patch, n * f.dim, np.float32).reshape(f.grid_h, f.grid_w, f.dim)
            cls = _copy_out(f.cls, f.dim, np.float32)
        finally:
            L.ad_features_free(byref(f))
        del keep_alive
        return patch, cls

    def features_layers(self, image: Any, layers: Sequence[int], resolution: int = 448,
                        norm: bool = True, *, context: Optional["Context"] = None
                        ) -> List[Tuple[np.ndarray, np.ndarray]]:
        """Outputs of the listed 0-based blocks (negative: from the end, -1 = the last), each
        through the final LayerNorm when ``norm``; one ``(patch, cls)`` per layer, as
        ``anomalydino features --layers``."""
        ctx = self._context(context)
        res = _check_size("resolution", resolution, lo=0)
        ls = list(layers)
        if not ls or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                             for v in ls):
            raise arg_error(f"layers: {layers!r}: expected a non-empty list of ints")
        img, keep_alive = _as_image(image)
        L = lib()
        inp = _c.ad_input()
        check(L.ad_preprocess(byref(img), res, byref(inp)))
        del keep_alive
        outs = (_c.ad_features * len(ls))()
        try:
            arr = (c_int * len(ls))(*[int(v) for v in ls])
            check(L.ad_extract_layers(ctx._ptr, byref(inp), arr, len(ls), int(bool(norm)),
                                      outs))
        finally:
            L.ad_input_free(byref(inp))
        result = []
        try:
            for f in outs:
                n = f.grid_h * f.grid_w
                result.append((_copy_out(f.patch, n * f.dim, np.float32)
                               .reshape(f.grid_h, f.grid_w, f.dim),
                               _copy_out(f.cls, f.dim, np.float32)))
        finally:
            for f in outs:
                L.ad_features_free(byref(f))
        return result

    def __repr__(self) -> str:
        if self.closed:
            return "<anomalydino.Model closed>"
        i = self.info
        return f"<anomalydino.Model {i.name} dim={i.dim} depth={i.depth} ({self.path})>"


class Context(_Handle):
    """Per-thread scratch for running a model: use one Context per thread at a time.

    ``threads`` OpenMP threads (0 = all cores). Holds its model alive.
    """

    _what = "Context"

    def __init__(self, model: Model, threads: int = 0) -> None:
        super().__init__()
        if not isinstance(model, Model):
            raise arg_error(f"model: expected a Model, got {type(model).__name__}")
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
            raise arg_error(f"threads: expected an int, got {type(threads).__name__}")
        L = lib()
        p = L.ad_context_default_params()
        p.n_threads = int(threads)
        self._model_h = model._h  # keeps the weights alive as long as this context
        ptr = L.ad_context_new(model._ptr, p)
        if not ptr:
            raise last_error()
        self._h = _Owned(ptr, L.ad_context_free)
        self.model = model

    @property
    def threads(self) -> int:
        """The thread count this context runs with."""
        return int(lib().ad_context_threads(self._ptr))

    def close(self) -> None:
        super().close()
        self._model_h = None


# ---------------------------------------------------------------------------------------------
# Bank, prediction
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BankParams:
    resolution: int   # smaller edge (0 = no resize)
    rotate: bool      # 8 rotations of every reference
    mask_refs: bool   # PCA-masked references
    mask_test: bool   # PCA-mask test images by default
    knn: int          # neighbours averaged


class Reference(NamedTuple):
    """A reference image of a bank."""
    image_id: int
    views: int     # 1, or 8 with rotations
    added: int     # Unix seconds; 0 = unknown (bank files of format 1)
    name: str      # "" if none


class ThresholdRecord(NamedTuple):
    """One threshold a bank learned."""
    threshold: float
    rule: str               # "max" or "quantile:Q"
    source: str             # "leave-one-out" or "scores"
    n_refs: int             # references in the bank then
    time: int               # Unix seconds
    scores: Tuple[float, ...]


class Nearest(NamedTuple):
    """The bank row nearest to one test patch (Bank.nearest)."""
    patch: int          # index into the test image's grid (row-major)
    test_x: int
    test_y: int
    grid_h: int
    grid_w: int
    masked: bool        # masking drops this patch (its grid value is 0)
    ref_index: int      # the reference, 0-based in the order added (Bank.references)
    ref_x: int
    ref_y: int
    view: int           # 0: the reference as given, v: its v-th rotation
    angle_deg: float
    distance: float     # 1 - cosine (the patch's grid value with knn 1, up to rounding)


class Result(NamedTuple):
    """One prediction.

    score: mean of the top 1 % patch distances. verdict: "OK", "NG" (score above the bank's
    threshold) or None (the bank has no threshold). grid: float64 (grid_h, grid_w) patch
    distances, 0 for masked-out patches. keep: bool (grid_h, grid_w), the mask used.
    """
    score: float
    verdict: Optional[str]
    grid: np.ndarray
    keep: np.ndarray


def _parse_rule(threshold: Union[str, Tuple[str, float]]) -> Tuple[int, float]:
    if isinstance(threshold, tuple):
        if len(threshold) != 2 or threshold[0] != "quantile":
            raise arg_error(f"threshold: {threshold!r}: expected ('quantile', q)")
        q = float(threshold[1])
    elif threshold == "max":
        return 0, 1.0
    elif isinstance(threshold, str) and threshold.startswith("quantile:"):
        try:
            q = float(threshold[len("quantile:"):])
        except ValueError:
            raise arg_error(f"threshold: {threshold!r}: expected quantile:Q, 0 <= Q <= 1") from None
    else:
        raise arg_error(f"threshold: {threshold!r}: expected 'max', 'quantile:Q', ('quantile', Q),"
                        " a number or None")
    if not (0.0 <= q <= 1.0):
        raise arg_error(f"threshold: quantile {q} outside [0, 1]")
    return 1, q


class Bank(_Handle):
    """A memory bank of normal patch features, with its settings and decision threshold.

    Make one with :meth:`Bank.fit` (or an empty one with ``Bank(model, ...)`` and
    :meth:`add`), or read one with :meth:`Bank.load`; files are the CLI's bank files.
    """

    _what = "Bank"

    def __init__(self, model: Model, *, resolution: int = 448, rotate: bool = True,
                 mask_refs: bool = False, mask_test: bool = False, knn: int = 1) -> None:
        """An empty bank for ``model``'s features (add images with :meth:`add`)."""
        super().__init__()
        if not isinstance(model, Model):
            raise arg_error(f"model: expected a Model, got {type(model).__name__}")
        L = lib()
        p = L.ad_bank_default_params()
        p.resolution = _check_size("resolution", resolution, lo=0)
        p.rotate = int(bool(rotate))
        p.mask_refs = int(bool(mask_refs))
        p.mask_test = int(bool(mask_test))
        p.knn_k = _check_size("knn", knn)
        ptr = L.ad_bank_new(model._ptr, byref(p))
        if not ptr:
            raise last_error()
        self._h = _Owned(ptr, L.ad_bank_free)
        self._model: Optional[Model] = model

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def fit(cls, model: Model, images: Iterable[Any], resolution: int = 448, rotate: bool = True,
            mask_refs: bool = False, knn: int = 1, threshold: ThresholdSpec = "max", *,
            mask_test: bool = False, calibration: Optional[Iterable[Any]] = None,
            names: Optional[Sequence[str]] = None, clock: Optional[int] = None,
            coreset: Optional[float] = None, context: Optional[Context] = None) -> "Bank":
        """Learn "normal" from good images, as ``anomalydino fit`` does.

        Args:
            images: uint8 (H, W, 3) RGB reference images (ids 0, 1, ... in order).
            resolution, rotate, mask_refs, knn, mask_test: the bank's settings (the CLI's
                defaults).
            threshold: how the decision threshold is learned from normal images only:
                ``"max"`` (the largest score) or ``"quantile:Q"`` / ``("quantile", Q)``
                (numpy.quantile, linear) over the scores of the ``calibration`` images if
                given, else leave-one-out over the references (needs two or more; with one
                reference the bank gets no threshold and a warning is issued); a number: that
                threshold; None: no threshold.
            calibration: held-out good images for the threshold.
            names: a name per reference, recorded in the bank (the CLI records the file
                names it was given); default: none.
            clock: Unix seconds stamped on the references and the threshold instead of the
                system clock (reproducible bank files; the CLI takes SOURCE_DATE_EPOCH).
            coreset: subsample the rows before learning the threshold (see :meth:`coreset`),
                as ``fit --coreset``.
        """
        fixed = threshold is None or (isinstance(threshold, (int, float, np.floating, np.integer))
                                      and not isinstance(threshold, bool))
        if fixed and calibration is not None:
            raise arg_error(f"Bank.fit: calibration images are only used to learn a threshold "
                            f"('max' or a quantile), not with threshold={threshold!r}")
        if not fixed:
            _parse_rule(threshold)  # type: ignore[arg-type]  # refuse a bad rule before the work
        bank = cls(model, resolution=resolution, rotate=rotate, mask_refs=mask_refs,
                   mask_test=mask_test, knn=knn)
        if clock is not None:
            bank.set_clock(clock)
        ctx = model._context(context)
        imgs = list(images)
        if names is not None and len(names) != len(imgs):
            raise arg_error(f"Bank.fit: {len(names)} names for {len(imgs)} images")
        for i, im in enumerate(imgs):
            bank.add(im, name=None if names is None else names[i], context=ctx,
                     _what=f"images[{i}]")
        if bank.n_images == 0:
            raise arg_error("Bank.fit: no reference images")
        if coreset is not None:
            bank.coreset(coreset, context=ctx)
        if threshold is None:
            return bank
        if isinstance(threshold, (int, float, np.floating, np.integer)) and \
                not isinstance(threshold, bool):
            bank.set_threshold(float(threshold))
            return bank
        rule, q = _parse_rule(threshold)  # type: ignore[arg-type]
        if calibration is not None:
            scores = [bank.predict(im, context=ctx).score for im in calibration]
            if not scores:
                raise arg_error("Bank.fit: calibration is empty")
            bank.calibrate_scores(scores, threshold)  # type: ignore[arg-type]
        elif bank.n_images >= 2:
            check(lib().ad_bank_calibrate_loo(bank._ptr, ctx._ptr, rule, q))
        else:
            warnings.warn("Bank.fit: one reference image and no calibration images: the bank has "
                          "no decision threshold (verdicts are None)", stacklevel=2)
        return bank

    @classmethod
    def load(cls, path: PathLike, model: Optional[Model] = None) -> "Bank":
        """Read a bank file (written by :meth:`save` or ``anomalydino fit``). With ``model``,
        the bank is checked against those weights (AD_E_MISMATCH if they are not its own) and
        :meth:`predict` uses them."""
        L = lib()
        ptr = L.ad_bank_load(_path_bytes(path))
        if not ptr:
            raise last_error()
        bank = cls.__new__(cls)
        _Handle.__init__(bank)
        bank._h = _Owned(ptr, L.ad_bank_free)
        bank._model = None
        if model is not None:
            bank.attach(model)
        return bank

    def attach(self, model: Model) -> None:
        """Use ``model`` for predictions; AD_E_MISMATCH if the bank was made with other weights."""
        if not isinstance(model, Model):
            raise arg_error(f"model: expected a Model, got {type(model).__name__}")
        check(lib().ad_bank_check_model(self._ptr, model._ptr))
        self._model = model

    def save(self, path: PathLike) -> None:
        """Write the bank file (versioned, checksummed; readable by the CLI)."""
        check(lib().ad_bank_save(self._ptr, _path_bytes(path)))

    def add(self, image: Any, image_id: Optional[int] = None, *, name: Optional[str] = None,
            context: Optional[Context] = None, _what: str = "image") -> None:
        """Add one reference image (and its rotations if the bank rotates), recorded with
        ``name`` and the time. It gets the next image id (largest + 1), or ``image_id`` when
        given (ids group rows for leave-one-out)."""
        ctx = self._need_model(context)
        img, keep_alive = _as_image(image, _what)
        if image_id is None:
            nm = (c_char_p * 1)(None if name is None else os.fsencode(name))
            st = lib().ad_bank_add_references(self._ptr, ctx._ptr, byref(img), nm, 1, 0)
        else:
            if name is not None:
                raise arg_error("Bank.add: name is recorded for references added without an "
                                "explicit image_id")
            st = lib().ad_bank_add_image(self._ptr, ctx._ptr, byref(img),
                                         _check_size("image_id", image_id, lo=0))
        del keep_alive
        if st != _c.AD_OK:
            e = last_error(st)
            raise AnomalyDinoError(e.code, f"{_what}: {e.message}" if _what != "image" else e.message)

    def add_features(self, patch: Any, keep: Any = None, image_id: int = 0) -> None:
        """Add precomputed patch features, float32 (grid_h, grid_w, dim) (or (N, dim) with
        grid 1 x N), optionally only where ``keep`` (grid_h, grid_w) is true."""
        p = np.asarray(patch)
        if p.dtype.kind != "f":
            raise arg_error(f"patch: dtype {p.dtype}, expected float32 (grid_h, grid_w, dim)")
        if p.ndim == 2:
            p = p.reshape(1, p.shape[0], p.shape[1])
        if p.ndim != 3 or 0 in p.shape:
            raise arg_error(f"patch: shape {p.shape}, expected (grid_h, grid_w, dim)")
        p = np.ascontiguousarray(p, dtype=np.float32)
        gh, gw, d = p.shape
        f = _c.ad_features(gh, gw, d, p.ctypes.data_as(POINTER(c_float)), None)
        kp = None
        if keep is not None:
            k = np.asarray(keep)
            if k.shape != (gh, gw) and k.shape != (gh * gw,):
                raise arg_error(f"keep: shape {k.shape}, expected ({gh}, {gw})")
            k = np.ascontiguousarray(k != 0, dtype=np.uint8)
            kp = k.ctypes.data_as(POINTER(c_uint8))
        check(lib().ad_bank_add_features(self._ptr, byref(f), kp,
                                         _check_size("image_id", image_id, lo=0)))

    # -- threshold ------------------------------------------------------------------------------
    def calibrate_loo(self, rule: Union[str, Tuple[str, float]] = "max", *,
                      context: Optional[Context] = None) -> float:
        """Leave-one-out threshold over the references (>= 2); returns it."""
        ctx = self._need_model(context)
        r, q = _parse_rule(rule)
        check(lib().ad_bank_calibrate_loo(self._ptr, ctx._ptr, r, q))
        return self.threshold  # type: ignore[return-value]

    def calibrate_scores(self, scores: Sequence[float],
                         rule: Union[str, Tuple[str, float]] = "max") -> float:
        """Threshold from scores of held-out good images; returns it."""
        r, q = _parse_rule(rule)
        s = np.ascontiguousarray(np.asarray(scores, dtype=np.float64).reshape(-1))
        if s.size == 0 or s.size > 2**31 - 1:
            raise arg_error(f"scores: {s.size} values")
        check(lib().ad_bank_calibrate_scores(self._ptr, s.ctypes.data_as(POINTER(c_double)),
                                             int(s.size), r, q))
        return self.threshold  # type: ignore[return-value]

    def set_threshold(self, value: float) -> None:
        """Use ``value`` as the decision threshold (NG iff score > value)."""
        v = float(value)
        if not math.isfinite(v):
            raise arg_error(f"threshold: {v} is not finite")
        self.calibrate_scores([v], "max")

    def set_clock(self, unix_seconds: int) -> None:
        """Stamp references added and thresholds learned from now on with this time (Unix
        seconds) instead of the system clock's (0: the system clock again)."""
        if isinstance(unix_seconds, bool) or not isinstance(unix_seconds, (int, np.integer)) \
                or not 0 <= int(unix_seconds) < 2**63:
            raise arg_error(f"clock: {unix_seconds!r}: expected Unix seconds, an int >= 0")
        lib().ad_bank_set_clock(self._ptr, int(unix_seconds))

    def coreset(self, r: float, *, context: Optional[Context] = None) -> int:
        """Greedy k-center coreset of the rows (PatchCore's; deterministic): r in (0, 1] keeps
        ceil(r * rows) rows, an integer r > 1 that many. Once per bank, before learning the
        threshold. Returns the rows kept."""
        if isinstance(r, bool) or not isinstance(r, (int, float, np.integer, np.floating)):
            raise arg_error(f"coreset: {r!r}: expected a number")
        ctx = None if context is None else self._need_model(context)
        check(lib().ad_bank_coreset(self._ptr, None if ctx is None else ctx._ptr, float(r)))
        return self.rows

    @property
    def coreset_setting(self) -> Tuple[float, int]:
        """(the recorded coreset setting, 0 if never subsampled; the rows offered to it)."""
        n = c_size_t()
        v = lib().ad_bank_coreset_setting(self._ptr, byref(n))
        return float(v), int(n.value)

    @property
    def references(self) -> List["Reference"]:
        """The references, in the order added: id, views (8 with rotations), time, name."""
        L = lib()
        out = []
        for i in range(self.n_images):
            r = _c.ad_bank_ref()
            check(L.ad_bank_ref_get(self._ptr, i, byref(r)))
            out.append(Reference(r.image_id, r.views, int(r.added), _s(r.name)))
        return out

    @property
    def threshold_history(self) -> List["ThresholdRecord"]:
        """Every threshold learned, oldest first (the last is the current one)."""
        L = lib()
        out = []
        for i in range(int(L.ad_bank_threshold_count(self._ptr))):
            t = _c.ad_thresh_record()
            check(L.ad_bank_threshold_get(self._ptr, i, byref(t)))
            rule = "max" if t.rule == 0 else f"quantile:{t.quantile:g}"
            out.append(ThresholdRecord(
                t.threshold, rule, "leave-one-out" if t.source == 0 else "scores", t.n_refs,
                int(t.time), tuple(_copy_out(t.scores, t.n_scores, np.float64).tolist())))
        return out

    @property
    def threshold(self) -> Optional[float]:
        """The decision threshold, or None."""
        t = c_double()
        return float(t.value) if lib().ad_bank_threshold(self._ptr, byref(t)) else None

    # -- properties -----------------------------------------------------------------------------
    @property
    def params(self) -> BankParams:
        p = lib().ad_bank_get_params(self._ptr)
        return BankParams(p.resolution, bool(p.rotate), bool(p.mask_refs), bool(p.mask_test),
                          p.knn_k)

    @property
    def rows(self) -> int:
        """Feature rows (patches of all references and rotations)."""
        return int(lib().ad_bank_rows(self._ptr))

    @property
    def n_images(self) -> int:
        """Reference images added (before rotation)."""
        return int(lib().ad_bank_images(self._ptr))

    @property
    def model(self) -> Optional[Model]:
        return self._model

    def _need_model(self, context: Optional[Context]) -> Context:
        if context is not None:
            if not isinstance(context, Context):
                raise arg_error(f"context: expected a Context, got {type(context).__name__}")
            return context
        if self._model is None:
            raise arg_error("this bank has no model: Bank.load(path, model), bank.attach(model) "
                            "or pass context=model.context()")
        return self._model._context(None)

    # -- prediction -----------------------------------------------------------------------------
    def predict(self, image: Any, mask: Optional[bool] = None, *,
                context: Optional[Context] = None) -> Result:
        """Score one image (uint8 (H, W, 3) RGB) against the bank, as ``anomalydino predict``.

        mask: PCA-mask the test image (True/False), or None for the bank's setting.
        """
        ctx = self._need_model(context)
        m = -1 if mask is None else int(bool(mask))
        img, keep_alive = _as_image(image)
        r = _c.ad_result()
        L = lib()
        check(L.ad_predict(self._ptr, ctx._ptr, byref(img), m, byref(r)))
        try:
            n = r.grid_h * r.grid_w
            grid = _copy_out(r.grid, n, np.float64).reshape(r.grid_h, r.grid_w)
            keep = _copy_out(r.keep, n, np.uint8).reshape(r.grid_h, r.grid_w).astype(bool)
            res = Result(float(r.score), _VERDICTS.get(r.verdict), grid, keep)
        finally:
            L.ad_result_free(byref(r))
        del keep_alive
        return res

    def nearest(self, image: Any, patch: int, mask: Optional[bool] = None, *,
                context: Optional[Context] = None) -> "Nearest":
        """"Why is it NG": the bank row nearest to one test patch (row-major index into the
        result's grid), with the preprocessing and distance of :meth:`predict`."""
        ctx = self._need_model(context)
        m = -1 if mask is None else int(bool(mask))
        img, keep_alive = _as_image(image)
        out = _c.ad_nearest()
        check(lib().ad_predict_nearest(self._ptr, ctx._ptr, byref(img), m,
                                       _check_size("patch", patch, lo=0), byref(out)))
        del keep_alive
        return Nearest(out.patch, out.test_x, out.test_y, out.grid_h, out.grid_w,
                       bool(out.masked), out.ref_index, out.ref_x, out.ref_y, out.view,
                       out.angle_deg, out.distance)

    def __repr__(self) -> str:
        if self.closed:
            return "<anomalydino.Bank closed>"
        p = self.params
        return (f"<anomalydino.Bank {self.n_images} images, {self.rows} rows, resolution "
                f"{p.resolution}, rotate {p.rotate}, knn {p.knn}, threshold {self.threshold}>")


# ---------------------------------------------------------------------------------------------
# Maps, scores, zero-shot
# ---------------------------------------------------------------------------------------------
def score_top1p(grid: Any) -> float:
    """Image score of a patch grid: mean of the floor(1 %) largest cells (max if none)."""
    g = _as_grid(grid)
    return float(lib().ad_score_top1p(g.ctypes.data_as(POINTER(c_double)), g.size))


def anomaly_map(grid: Any, width: int, height: int) -> np.ndarray:
    """Full-resolution heat map: bilinear resize of the patch grid to width x height, then a
    Gaussian blur (sigma 4). Returns float32 (height, width)."""
    g = _as_grid(grid)
    w = _check_size("width", width)
    h = _check_size("height", height)
    out = np.empty((h, w), dtype=np.float32)
    check(lib().ad_anomaly_map(g.ctypes.data_as(POINTER(c_double)), g.shape[0], g.shape[1], w, h,
                               out.ctypes.data_as(POINTER(c_float))))
    return out


def zeroshot(model: Model, images: Sequence[Any], resolution: int = 672, mask: bool = False, *,
             context: Optional[Context] = None) -> List[Result]:
    """Batched zero-shot scoring (no references): every image against the patches of all the
    others, as ``anomalydino zeroshot``. Needs two or more images. Returns one Result per image
    (verdict None)."""
    ctx = model._context(context)
    res = _check_size("resolution", resolution, lo=0)
    imgs = list(images)
    n = len(imgs)
    if n < 2:
        raise arg_error(f"zeroshot: needs at least 2 images (got {n})")
    L = lib()
    feats = (_c.ad_features * n)()
    keeps: List[Optional[np.ndarray]] = [None] * n
    grids: List[np.ndarray] = []
    done = 0
    try:
        for i, im in enumerate(imgs):
            img, keep_alive = _as_image(im, f"images[{i}]")
            st = L.ad_extract_image(ctx._ptr, byref(img), res, byref(feats[i]))
            del keep_alive
            if st != _c.AD_OK:
                e = last_error(st)
                raise AnomalyDinoError(e.code, f"images[{i}]: {e.message}")
            done = i + 1
            cells = feats[i].grid_h * feats[i].grid_w
            if mask:
                k = np.empty(cells, dtype=np.uint8)
                check(L.ad_mask_pca(byref(feats[i]), k.ctypes.data_as(POINTER(c_uint8))))
                keeps[i] = k
            grids.append(np.zeros(cells, dtype=np.float64))
        kp = (POINTER(c_uint8) * n)(*[k.ctypes.data_as(POINTER(c_uint8)) if k is not None
                                      else POINTER(c_uint8)() for k in keeps])
        gp = (POINTER(c_double) * n)(*[g.ctypes.data_as(POINTER(c_double)) for g in grids])
        check(L.ad_zeroshot(ctx._ptr, feats, kp, n, gp))
        out = []
        for i in range(n):
            gh, gw = feats[i].grid_h, feats[i].grid_w
            g = grids[i]
            score = float(L.ad_score_top1p(g.ctypes.data_as(POINTER(c_double)), g.size))
            k = keeps[i]
            keep = (k.reshape(gh, gw) != 0) if k is not None else np.ones((gh, gw), dtype=bool)
            out.append(Result(score, None, g.reshape(gh, gw), keep))
        return out
    finally:
        for i in range(done):
            L.ad_features_free(byref(feats[i]))


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------
class ImageMetrics(NamedTuple):
    auroc: float
    ap: float
    f1max: float


class PixelMetrics(NamedTuple):
    auroc: float
    f1max: float
    aupro: float   # AU-PRO up to FPR 0.3, divided by 0.3


def metrics_image(labels: Any, scores: Any) -> ImageMetrics:
    """Image AUROC, average precision and F1-max (scikit-learn semantics). labels: 0 normal,
    1 anomalous (both needed); scores: finite."""
    lab = np.asarray(labels)
    sc = np.asarray(scores)
    if lab.ndim != 1 or sc.ndim != 1 or lab.shape != sc.shape:
        raise arg_error(f"labels {lab.shape} and scores {sc.shape}: expected two 1-D arrays of "
                        "one length")
    if lab.dtype.kind not in "biu":
        raise arg_error(f"labels: dtype {lab.dtype}, expected 0/1 integers or bools")
    if sc.dtype.kind not in "fiu":
        raise arg_error(f"scores: dtype {sc.dtype}, expected numbers")
    if lab.size and (lab.min() < 0 or lab.max() > 1):
        bad = int(np.flatnonzero((lab < 0) | (lab > 1))[0])
        raise arg_error(f"labels[{bad}] is {lab[bad]} (expected 0 or 1)")
    lab = np.ascontiguousarray(lab, dtype=np.intc)
    sc = np.ascontiguousarray(sc, dtype=np.float64)
    out = _c.ad_image_metrics()
    check(lib().ad_metrics_image(lab.ctypes.data_as(POINTER(c_int)),
                                 sc.ctypes.data_as(POINTER(c_double)), lab.size, byref(out)))
    return ImageMetrics(out.auroc, out.ap, out.f1max)


class PixelEval(_Handle):
    """Pixel metrics of a category in bounded memory: add (map, mask) pairs, then finish()."""

    _what = "PixelEval"

    def __init__(self) -> None:
        super().__init__()
        L = lib()
        ptr = L.ad_pixel_eval_new()
        if not ptr:
            raise last_error()
        self._h = _Owned(ptr, L.ad_pixel_eval_free)
        self.n_images = 0

    def add(self, anomaly_map: Any, mask: Any = None) -> None:
        """One image: map float (H, W), finite; mask (H, W), nonzero = anomalous, or None for
        a good image."""
        m = np.asarray(anomaly_map)
        if m.dtype.kind != "f" or m.ndim != 2 or 0 in m.shape:
            raise arg_error(f"map: {m.dtype} {m.shape}, expected a non-empty float (H, W) array")
        m = np.ascontiguousarray(m, dtype=np.float32)
        h, w = m.shape
        mp = None
        if mask is not None:
            k = np.asarray(mask)
            if k.ndim == 3 and k.shape[2] in (1, 3, 4):
                k = k[..., 0]
            if k.shape != (h, w):
                raise arg_error(f"mask: shape {k.shape}, expected {(h, w)} like its map")
            k = np.ascontiguousarray(k != 0, dtype=np.uint8)
            mp = k.ctypes.data_as(POINTER(c_uint8))
        check(lib().ad_pixel_eval_add(self._ptr, m.ctypes.data_as(POINTER(c_float)), mp, w, h))
        self.n_images += 1

    def finish(self) -> PixelMetrics:
        """Pixel AUROC, F1-max and AU-PRO of everything added so far."""
        out = _c.ad_pixel_metrics()
        check(lib().ad_pixel_eval_finish(self._ptr, byref(out)))
        return PixelMetrics(out.auroc, out.f1max, out.aupro)


def pixel_metrics(maps: Iterable[Any], masks: Iterable[Any]) -> PixelMetrics:
    """Pixel AUROC, F1-max and AU-PRO (MVTec, FPR <= 0.3) over all pixels of the images.
    masks[i] may be None for a good image."""
    maps = list(maps)
    masks = list(masks)
    if len(maps) != len(masks):
        raise arg_error(f"pixel_metrics: {len(maps)} maps but {len(masks)} masks")
    with PixelEval() as pe:
        for i, (m, k) in enumerate(zip(maps, masks)):
            try:
                pe.add(m, k)
            except AnomalyDinoError as e:
                raise AnomalyDinoError(e.code, f"image {i}: {e.message}") from None
        return pe.finish()
