"""Loading libanomalydino and declaring its C interface (private).

The shared library is looked up, once, on first use, in this order:

1. the ``ANOMALYDINO_LIB`` environment variable: a path to the library file, or to a folder
   holding ``libanomalydino.so.0`` (if it is set and cannot be loaded, that is an error: no
   silent fall-back to another copy);
2. the package folder (``libanomalydino.so.0`` or ``libanomalydino.so`` next to this file);
3. the build tree, when the package is imported from a source checkout
   (``<repo>/build/libanomalydino.so.0``);
4. the system: the dynamic loader's search for ``libanomalydino.so.0`` (``LD_LIBRARY_PATH``,
   ``/etc/ld.so.cache``, the default folders), then ``ctypes.util.find_library("anomalydino")``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from ctypes import (POINTER, Structure, c_char_p, c_double, c_float, c_int, c_int64, c_size_t,
                    c_uint8, c_uint64, c_void_p)
from typing import List, Optional

SONAME = "libanomalydino.so.0"
ENV_VAR = "ANOMALYDINO_LIB"

# Status codes of include/anomalydino.h (ad_status) and their identifiers there.
AD_OK, AD_E_ARG, AD_E_IO, AD_E_FORMAT, AD_E_NOMEM, AD_E_MISMATCH, AD_E_INTERNAL = range(7)
_FALLBACK_NAMES = {0: "AD_OK", 1: "AD_E_ARG", 2: "AD_E_IO", 3: "AD_E_FORMAT", 4: "AD_E_NOMEM",
                   5: "AD_E_MISMATCH", 6: "AD_E_INTERNAL"}


class AnomalyDinoError(Exception):
    """The one exception the package raises.

    Attributes:
        status: the status name, as the C header spells it, e.g. ``"AD_E_FORMAT"``.
        code: the numeric ``ad_status``.
        description: the library's words for the status (``ad_status_name()``), e.g.
            ``"bad file format"``.
        message: the one-line reason (``ad_errmsg()`` for library failures).

    ``str(e)`` is ``"STATUS: message"``.
    """

    def __init__(self, code: int, message: str) -> None:
        self.code = int(code)
        self.status = _FALLBACK_NAMES.get(self.code, f"AD_STATUS_{self.code}")
        self.description = status_name(self.code)
        self.message = message
        super().__init__(f"{self.status}: {message}")


# ---------------------------------------------------------------------------------------------
# C structures (must match include/anomalydino.h field for field)
# ---------------------------------------------------------------------------------------------
class ad_image(Structure):
    _fields_ = [("width", c_int), ("height", c_int), ("data", POINTER(c_uint8))]


class ad_model_info(Structure):
    _fields_ = [("dim", c_int), ("depth", c_int), ("heads", c_int), ("head_dim", c_int),
                ("ffn_hidden", c_int), ("swiglu", c_int), ("n_registers", c_int),
                ("patch_size", c_int), ("pos_grid", c_int), ("pos_interp", c_int),
                ("format", c_char_p), ("dtype", c_char_p), ("name", c_char_p),
                ("n_params", c_uint64), ("fingerprint", c_uint64)]


class ad_input(Structure):
    _fields_ = [("width", c_int), ("height", c_int), ("data", POINTER(c_float))]


class ad_context_params(Structure):
    _fields_ = [("n_threads", c_int)]


class ad_features(Structure):
    _fields_ = [("grid_h", c_int), ("grid_w", c_int), ("dim", c_int),
                ("patch", POINTER(c_float)), ("cls", POINTER(c_float))]


class ad_bank_params(Structure):
    _fields_ = [("resolution", c_int), ("rotate", c_int), ("mask_refs", c_int),
                ("mask_test", c_int), ("knn_k", c_int)]


class ad_bank_ref(Structure):
    _fields_ = [("image_id", c_int), ("views", c_int), ("added", c_int64), ("name", c_char_p)]


class ad_thresh_record(Structure):
    _fields_ = [("rule", c_int), ("quantile", c_double), ("source", c_int),
                ("threshold", c_double), ("n_refs", c_int), ("time", c_int64),
                ("n_scores", c_int), ("scores", POINTER(c_double))]


class ad_nearest(Structure):
    _fields_ = [(n, c_int) for n in ("patch", "test_x", "test_y", "grid_h", "grid_w", "masked",
                                     "ref_index", "ref_x", "ref_y", "view")] + \
               [("angle_deg", c_double), ("distance", c_double)]


class ad_result(Structure):
    _fields_ = [("score", c_double), ("verdict", c_int), ("grid_h", c_int), ("grid_w", c_int),
                ("grid", POINTER(c_double)), ("keep", POINTER(c_uint8))]


class ad_image_metrics(Structure):
    _fields_ = [("auroc", c_double), ("ap", c_double), ("f1max", c_double)]


class ad_pixel_metrics(Structure):
    _fields_ = [("auroc", c_double), ("f1max", c_double), ("aupro", c_double)]


_P = c_void_p  # opaque handles: ad_model*, ad_context*, ad_bank*, ad_pixel_eval*
_st = c_int    # ad_status

# name: (restype, argtypes)
_PROTOTYPES = {
    "ad_errmsg": (c_char_p, []),
    "ad_last_status": (c_int, []),
    "ad_status_name": (c_char_p, [c_int]),
    "ad_version": (c_char_p, []),
    "ad_model_load": (_P, [c_char_p]),
    "ad_model_free": (None, [_P]),
    "ad_model_get_info": (ad_model_info, [_P]),
    "ad_context_default_params": (ad_context_params, []),
    "ad_context_new": (_P, [_P, ad_context_params]),
    "ad_context_free": (None, [_P]),
    "ad_context_threads": (c_int, [_P]),
    "ad_extract_image": (_st, [_P, POINTER(ad_image), c_int, POINTER(ad_features)]),
    "ad_features_free": (None, [POINTER(ad_features)]),
    "ad_preprocess": (_st, [POINTER(ad_image), c_int, POINTER(ad_input)]),
    "ad_input_free": (None, [POINTER(ad_input)]),
    "ad_extract_layers": (_st, [_P, POINTER(ad_input), POINTER(c_int), c_int, c_int,
                                POINTER(ad_features)]),
    "ad_mask_pca": (_st, [POINTER(ad_features), POINTER(c_uint8)]),
    "ad_bank_default_params": (ad_bank_params, []),
    "ad_bank_new": (_P, [_P, POINTER(ad_bank_params)]),
    "ad_bank_free": (None, [_P]),
    "ad_bank_get_params": (ad_bank_params, [_P]),
    "ad_bank_rows": (c_size_t, [_P]),
    "ad_bank_images": (c_int, [_P]),
    "ad_bank_add_image": (_st, [_P, _P, POINTER(ad_image), c_int]),
    "ad_bank_add_features": (_st, [_P, POINTER(ad_features), POINTER(c_uint8), c_int]),
    "ad_bank_calibrate_loo": (_st, [_P, _P, c_int, c_double]),
    "ad_bank_calibrate_scores": (_st, [_P, POINTER(c_double), c_int, c_int, c_double]),
    "ad_bank_threshold": (c_int, [_P, POINTER(c_double)]),
    "ad_bank_add_references": (_st, [_P, _P, POINTER(ad_image), POINTER(c_char_p), c_int, c_int]),
    "ad_bank_ref_get": (_st, [_P, c_int, POINTER(ad_bank_ref)]),
    "ad_bank_threshold_count": (c_int, [_P]),
    "ad_bank_threshold_get": (_st, [_P, c_int, POINTER(ad_thresh_record)]),
    "ad_bank_set_clock": (None, [_P, c_int64]),
    "ad_bank_coreset": (_st, [_P, _P, c_double]),
    "ad_bank_coreset_setting": (c_double, [_P, POINTER(c_size_t)]),
    "ad_predict_nearest": (_st, [_P, _P, POINTER(ad_image), c_int, c_int, POINTER(ad_nearest)]),
    "ad_bank_save": (_st, [_P, c_char_p]),
    "ad_bank_load": (_P, [c_char_p]),
    "ad_bank_check_model": (_st, [_P, _P]),
    "ad_score_top1p": (c_double, [POINTER(c_double), c_size_t]),
    "ad_anomaly_map": (_st, [POINTER(c_double), c_int, c_int, c_int, c_int, POINTER(c_float)]),
    "ad_predict": (_st, [_P, _P, POINTER(ad_image), c_int, POINTER(ad_result)]),
    "ad_result_free": (None, [POINTER(ad_result)]),
    "ad_zeroshot": (_st, [_P, POINTER(ad_features), POINTER(POINTER(c_uint8)), c_int,
                          POINTER(POINTER(c_double))]),
    "ad_metrics_image": (_st, [POINTER(c_int), POINTER(c_double), c_size_t,
                               POINTER(ad_image_metrics)]),
    "ad_pixel_eval_new": (_P, []),
    "ad_pixel_eval_add": (_st, [_P, POINTER(c_float), POINTER(c_uint8), c_int, c_int]),
    "ad_pixel_eval_finish": (_st, [_P, POINTER(ad_pixel_metrics)]),
    "ad_pixel_eval_free": (None, [_P]),
}

_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None
_lib_path: Optional[str] = None


def _candidates() -> List[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    out = [os.path.join(here, SONAME), os.path.join(here, "libanomalydino.so")]
    repo = os.path.dirname(os.path.dirname(here))  # python/anomalydino -> repo root
    if os.path.isfile(os.path.join(repo, "include", "anomalydino.h")):
        out.append(os.path.join(repo, "build", SONAME))
    return out


def _declare(lib: ctypes.CDLL) -> None:
    for name, (res, args) in _PROTOTYPES.items():
        f = getattr(lib, name)  # AttributeError: an older library without that function
        f.restype = res
        f.argtypes = args


def _open() -> ctypes.CDLL:
    global _lib, _lib_path
    tried: List[str] = []
    env = os.environ.get(ENV_VAR)
    if env:
        path = os.path.join(env, SONAME) if os.path.isdir(env) else env
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            raise AnomalyDinoError(AD_E_IO, f"{ENV_VAR}={env}: cannot load {path}: {e}") from None
        _declare(lib)
        _lib, _lib_path = lib, os.path.abspath(path)
        return lib
    for path in _candidates():
        if os.path.isfile(path):
            try:
                lib = ctypes.CDLL(path)
            except OSError as e:
                tried.append(f"{path} ({e})")
                continue
            _declare(lib)
            _lib, _lib_path = lib, path
            return lib
        tried.append(f"{path} (absent)")
    for name in (SONAME, ctypes.util.find_library("anomalydino")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError as e:
            tried.append(f"{name} ({e})")
            continue
        _declare(lib)
        _lib, _lib_path = lib, name
        return lib
    raise AnomalyDinoError(AD_E_IO, "libanomalydino not found; set ANOMALYDINO_LIB to the "
                           "library file. Tried: " + "; ".join(tried))


def lib() -> ctypes.CDLL:
    """The loaded library (loaded on the first call)."""
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        return _open()


def library_path() -> str:
    """Where the library was loaded from (loading it if needed)."""
    lib()
    assert _lib_path is not None
    return _lib_path


def status_name(code: int) -> str:
    """The library's description of a status (ad_status_name()), or its identifier if the
    library is not loaded."""
    if _lib is not None:
        s = _lib.ad_status_name(code)
        if s:
            return s.decode()
    return _FALLBACK_NAMES.get(code, f"AD_STATUS_{code}")


def last_error(code: Optional[int] = None) -> AnomalyDinoError:
    """The exception for the last failure on this thread (after a NULL or a failing status)."""
    L = lib()
    if code is None:
        code = L.ad_last_status()
        if code == AD_OK:  # should not happen: a NULL constructor always sets a status
            code = AD_E_INTERNAL
    msg = L.ad_errmsg().decode(errors="replace")
    return AnomalyDinoError(code, msg)


def check(code: int) -> None:
    """Raise AnomalyDinoError unless code is AD_OK."""
    if code != AD_OK:
        raise last_error(code)


def arg_error(message: str) -> AnomalyDinoError:
    return AnomalyDinoError(AD_E_ARG, message)
