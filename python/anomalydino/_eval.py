"""The benchmark protocol from Python (include/anomalydino_eval.h): datasets, evaluate(),
merge() and the report, over the same C calls `anomalydino eval` makes."""
from __future__ import annotations

import os
from ctypes import (CFUNCTYPE, POINTER, Structure, byref, c_char_p, c_double, c_int, c_size_t,
                    c_uint, c_void_p)
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import _lib as _c
from ._lib import AnomalyDinoError, arg_error, check, last_error, lib

PathLike = Any
METRICS = ("image_auroc", "image_ap", "image_f1max", "pixel_auroc", "pixel_f1max", "pixel_aupro")
LAYOUTS = ("mvtec", "visa", "folder", "ksdd", "mtd", "manifest")
_STATES = {0: "planned", 1: "computed", 2: "resumed", 3: "failed"}
AD_E_CANCELLED = 7
MAX_SHOTS = 32


class _dataset_params(Structure):
    _fields_ = [("train_fraction", c_double), ("max_pixels", c_size_t),
                ("categories", POINTER(c_char_p)), ("n_categories", c_int)]


class _progress(Structure):
    _fields_ = [("kind", c_int), ("text", c_char_p), ("done", c_int), ("total", c_int)]


_PROGRESS_FN = CFUNCTYPE(None, c_void_p, POINTER(_progress))
_CANCEL_FN = CFUNCTYPE(c_int, c_void_p)


class _eval_params(Structure):
    _fields_ = [("zeroshot", c_int), ("shots", c_int * MAX_SHOTS), ("n_shots", c_int),
                ("n_seeds", c_int), ("preset", c_char_p), ("resolution", c_int),
                ("segmentation", c_int), ("n_examples", c_int), ("cache_bytes", c_size_t),
                ("max_pixels", c_size_t), ("weights_name", c_char_p), ("out_dir", c_char_p),
                ("shard_index", c_int), ("shard_count", c_int), ("progress", _PROGRESS_FN),
                ("cancel", _CANCEL_FN), ("user", c_void_p)]


class _eval_image(Structure):
    _fields_ = [("image", c_char_p), ("label", c_int), ("score", c_double),
                ("seconds", c_double)]


class _eval_example(Structure):
    _fields_ = [("image", c_char_p), ("label", c_int), ("score", c_double),
                ("file_image", c_char_p), ("file_gt", c_char_p), ("file_map", c_char_p)]


class _eval_unit(Structure):
    _fields_ = [("category", c_char_p), ("i_shot", c_int), ("i_seed", c_int), ("i_cat", c_int),
                ("shots", c_int), ("seed", c_int), ("state", c_int), ("n_test", c_int),
                ("mask", c_int), ("rotate", c_int), ("n_references", c_int),
                ("references", POINTER(c_char_p)), ("bank_rows", c_double),
                ("bank_seconds", c_double), ("n_images", c_int),
                ("images", POINTER(_eval_image)), ("metrics_present", c_uint),
                ("metrics", c_double * 6), ("n_skipped", c_int), ("skipped", POINTER(c_char_p)),
                ("n_examples", c_int), ("examples", POINTER(_eval_example)),
                ("examples_vmax", c_double)]


class _eval_summary(Structure):
    _fields_ = [(n, c_int) for n in ("computed", "resumed", "failed", "planned", "n_errors",
                                     "n_warnings")]


_P = c_void_p
_PROTOTYPES = {
    "ad_layout_parse": (c_int, [c_char_p, POINTER(c_int)]),
    "ad_dataset_default_params": (_dataset_params, []),
    "ad_dataset_open": (_P, [c_int, c_char_p, POINTER(_dataset_params)]),
    "ad_dataset_free": (None, [_P]),
    "ad_dataset_root": (c_char_p, [_P]),
    "ad_dataset_category_count": (c_int, [_P]),
    "ad_dataset_note_count": (c_int, [_P]),
    "ad_dataset_note": (c_char_p, [_P, c_int, POINTER(c_int)]),
    "ad_eval_default_params": (_eval_params, []),
    "ad_eval_run": (c_int, [_P, _P, _P, POINTER(_eval_params), POINTER(_P)]),
    "ad_eval_merge": (c_int, [POINTER(c_char_p), c_int, POINTER(_P)]),
    "ad_eval_results_free": (None, [_P]),
    "ad_eval_unit_count": (c_int, [_P]),
    "ad_eval_unit_at": (POINTER(_eval_unit), [_P, c_int]),
    "ad_eval_category_count": (c_int, [_P]),
    "ad_eval_category": (c_char_p, [_P, c_int]),
    "ad_eval_cell": (c_int, [_P, c_int, c_int, c_int, POINTER(c_double), POINTER(c_double)]),
    "ad_eval_get_summary": (_eval_summary, [_P]),
    "ad_eval_note_count": (c_int, [_P]),
    "ad_eval_note": (c_char_p, [_P, c_int, POINTER(c_int)]),
    "ad_eval_settings_json": (c_char_p, [_P]),
    "ad_report_write": (c_int, [_P, c_char_p]),
    "ad_report_tables_md": (c_void_p, [_P]),
    "ad_string_free": (None, [c_void_p]),
}
_declared = False


def _L():
    global _declared
    L = lib()
    if not _declared:
        for name, (res, args) in _PROTOTYPES.items():
            f = getattr(L, name)
            f.restype = res
            f.argtypes = args
        _declared = True
    return L


def _s(b: Optional[bytes]) -> str:
    return b.decode(errors="replace") if b else ""


def _path(p: PathLike) -> bytes:
    return os.fsencode(os.fspath(p))


@dataclass(frozen=True)
class EvalImage:
    image: str     # the sample's name, "TYPE/FILE"
    label: int     # 0 normal, 1 anomalous
    score: float
    seconds: float


@dataclass(frozen=True)
class EvalUnit:
    """One (shots, seed, category) of the protocol."""
    category: str
    shots: int                 # -1: full shot; zero-shot: 0
    seed: int
    state: str                 # "computed", "resumed", "failed", "planned"
    mask: bool
    rotate: bool
    references: Tuple[str, ...]
    bank_rows: int
    bank_seconds: float
    metrics: Dict[str, float]  # only the metrics computed
    images: Tuple[EvalImage, ...]
    problems: Tuple[str, ...]


@dataclass
class EvalResults:
    """What ad_eval_run (or ad_eval_merge) returned: units, per-cell statistics, notes, and the
    report. Plain Python data: nothing here points into the library."""
    units: List[EvalUnit]
    categories: List[str]
    shots: List[int]
    errors: List[str]
    warnings: List[str]
    settings_json: str
    summary: Dict[str, int]
    cells: Dict[Tuple[int, str, str], Tuple[float, float, int]] = field(default_factory=dict)
    tables_md: str = ""
    cancelled: bool = False

    def cell(self, shots: int, category: str, metric: str) -> Tuple[float, float, int]:
        """(mean, population std, seeds) over seeds; category "mean" is the macro average."""
        return self.cells[(shots, category, metric)]


class _Results:
    """Owns an ad_eval_results* until it is copied into an EvalResults."""

    def __init__(self, ptr: int) -> None:
        self.ptr = ptr

    def __del__(self) -> None:
        p, self.ptr = self.ptr, None
        if p:
            _L().ad_eval_results_free(p)

    def to_python(self, shots: Sequence[int], cancelled: bool = False) -> EvalResults:
        L, r = _L(), self.ptr
        units = []
        for i in range(L.ad_eval_unit_count(r)):
            u = L.ad_eval_unit_at(r, i).contents
            units.append(EvalUnit(
                category=_s(u.category), shots=u.shots, seed=u.seed, state=_STATES[u.state],
                mask=bool(u.mask), rotate=bool(u.rotate),
                references=tuple(_s(u.references[k]) for k in range(u.n_references)),
                bank_rows=int(u.bank_rows), bank_seconds=u.bank_seconds,
                metrics={METRICS[m]: u.metrics[m] for m in range(6) if u.metrics_present >> m & 1},
                images=tuple(EvalImage(_s(u.images[k].image), u.images[k].label,
                                       u.images[k].score, u.images[k].seconds)
                             for k in range(u.n_images)),
                problems=tuple(_s(u.skipped[k]) for k in range(u.n_skipped))))
        cats = [_s(L.ad_eval_category(r, i)) for i in range(L.ad_eval_category_count(r))]
        errors, warns = [], []
        for i in range(L.ad_eval_note_count(r)):
            is_err = c_int(0)
            t = _s(L.ad_eval_note(r, i, byref(is_err)))
            (errors if is_err.value else warns).append(t)
        s = L.ad_eval_get_summary(r)
        summary = {n: getattr(s, n) for n, _ in _eval_summary._fields_}
        cells = {}
        for si, k in enumerate(shots):
            for ci, name in [(c, n) for c, n in enumerate(cats)] + [(-1, "mean")]:
                for m, mname in enumerate(METRICS):
                    mu, sd = c_double(0), c_double(0)
                    n = L.ad_eval_cell(r, si, ci, m, byref(mu), byref(sd))
                    if n:
                        cells[(k, name, mname)] = (mu.value, sd.value, n)
        md = L.ad_report_tables_md(r)
        text = ""
        if md:
            text = c_char_p(md).value.decode(errors="replace")
            L.ad_string_free(md)
        return EvalResults(units, cats, list(shots), errors, warns,
                           _s(L.ad_eval_settings_json(r)), summary, cells, text, cancelled)

    def write_report(self, out_dir: PathLike) -> None:
        check(_L().ad_report_write(self.ptr, _path(out_dir)))


def _open_dataset(layout: str, root: PathLike, categories, train_fraction, max_pixels):
    L = _L()
    code = c_int(0)
    check(L.ad_layout_parse(layout.encode(), byref(code)))
    dp = L.ad_dataset_default_params()
    dp.train_fraction = float(train_fraction)
    dp.max_pixels = int(max_pixels)
    keep = None
    if categories is not None:
        cats = [str(c).encode() for c in categories]
        if not cats:
            raise arg_error("categories: empty list")
        keep = (c_char_p * len(cats))(*cats)
        dp.categories = keep
        dp.n_categories = len(cats)
    d = L.ad_dataset_open(code.value, _path(root), byref(dp))
    if not d:
        raise last_error()
    return d


def evaluate(model, layout: str, root: PathLike, *, shots: Sequence[int] = (1, 2, 4, 8, 16),
             seeds: int = 3, zeroshot: bool = False, preset: Optional[str] = None,
             resolution: Optional[int] = None, segmentation: bool = False,
             categories: Optional[Sequence[str]] = None, out_dir: Optional[PathLike] = None,
             report_dir: Optional[PathLike] = None, examples: int = 4, cache_mb: int = 4096,
             max_pixels: int = 40_000_000, train_fraction: float = 0.5,
             shard: Optional[Tuple[int, int]] = None, context=None,
             progress: Optional[Callable[[str, int, int, int], None]] = None,
             cancel: Optional[Callable[[], bool]] = None) -> EvalResults:
    """Run the paper's benchmark protocol on a dataset, as `anomalydino eval` does.

    layout: "mvtec", "visa", "folder", "ksdd", "mtd" or "manifest" (root: the CSV).
    shots: k per column (-1 = every reference); seeds: 0 .. seeds-1. zeroshot: the batched
    zero-shot variant (shots/seeds ignored). preset / resolution: None for the defaults
    (agnostic / 448; zero-shot masking_only / 672). out_dir: resume records and example images
    (None: everything in memory). report_dir: also write metrics.json, metrics.csv, tables.md,
    scores.csv, timing.csv and report.html there. shard: (index, count) runs that share only
    (needs out_dir). progress(kind, text, done, total): kind is "line", "begin", "step" or "end".
    cancel(): True stops at the next image; the units done so far come back with
    ``cancelled=True``. Raises AnomalyDinoError for anything that keeps the run from starting.
    """
    L = _L()
    ctx = model._context(context)
    p = L.ad_eval_default_params()
    p.zeroshot = int(bool(zeroshot))
    if not zeroshot:
        shots = list(shots)
        if not 1 <= len(shots) <= MAX_SHOTS:
            raise arg_error(f"shots: 1 to {MAX_SHOTS} values")
        for i, k in enumerate(shots):
            p.shots[i] = int(k)
        p.n_shots = len(shots)
        p.n_seeds = int(seeds)
    else:
        shots = [0]
    p.preset = preset.encode() if preset else None
    p.resolution = -1 if resolution is None else int(resolution)
    p.segmentation = int(bool(segmentation))
    p.n_examples = int(examples) if out_dir is not None else 0
    p.cache_bytes = int(cache_mb) << 20
    p.max_pixels = int(max_pixels)
    weights_name = os.fsencode(model.path)
    p.weights_name = weights_name
    p.out_dir = _path(out_dir) if out_dir is not None else None
    if shard is not None:
        p.shard_index, p.shard_count = int(shard[0]), int(shard[1])
    failure: List[BaseException] = []
    kinds = ("line", "begin", "step", "end")

    def on_progress(_user, pg):
        if failure:
            return
        try:
            g = pg.contents
            progress(kinds[g.kind], _s(g.text), g.done, g.total)
        except BaseException as e:  # noqa: BLE001 - re-raised after the run
            failure.append(e)

    def on_cancel(_user):
        if failure:
            return 1
        try:
            return 1 if cancel() else 0
        except BaseException as e:  # noqa: BLE001
            failure.append(e)
            return 1

    pf = _PROGRESS_FN(on_progress) if progress else _PROGRESS_FN()
    cf = _CANCEL_FN(on_cancel) if cancel or progress else _CANCEL_FN()
    if cancel is None and progress:
        cancel = lambda: False  # noqa: E731 - lets a failing progress callback stop the run
    p.progress, p.cancel = pf, cf
    d = _open_dataset(layout, root, categories, train_fraction, max_pixels)
    try:
        out = _P()
        st = L.ad_eval_run(model._ptr, ctx._ptr, d, byref(p), byref(out))
        if not out.value:
            raise last_error(st)
        res = _Results(out.value)
        if failure:
            raise failure[0]
        if st not in (_c.AD_OK, AD_E_CANCELLED):
            raise last_error(st)
        if report_dir is not None:
            res.write_report(report_dir)
        return res.to_python(shots, cancelled=st == AD_E_CANCELLED)
    finally:
        L.ad_dataset_free(d)


def merge(dirs: Sequence[PathLike], report_dir: Optional[PathLike] = None) -> EvalResults:
    """Combine the shard folders of evaluate(..., shard=(i, n)) runs (eval --shard) into the
    results of one run, as `anomalydino eval-merge` does; optionally write the report."""
    L = _L()
    paths = [_path(x) for x in dirs]
    if not paths:
        raise arg_error("merge: no folders given")
    arr = (c_char_p * len(paths))(*paths)
    out = _P()
    check(L.ad_eval_merge(arr, len(paths), byref(out)))
    res = _Results(out.value)
    if report_dir is not None:
        res.write_report(report_dir)
    settings = _s(L.ad_eval_settings_json(out.value))
    import json
    s = json.loads(settings)
    shots = [0] if s.get("mode") == "zeroshot" else list(s.get("shots", []))
    return res.to_python(shots)
