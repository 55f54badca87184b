"""anomalydino: training-free visual anomaly detection with DINOv2 (AnomalyDINO), from Python.

A thin, typed layer over the C library ``libanomalydino`` (ctypes + numpy, no PyTorch):
images are uint8 RGB numpy arrays of shape (H, W, 3); features, grids and maps come back as
numpy arrays, bit-identical to what the ``anomalydino`` command-line tool computes.

    >>> import anomalydino as ad
    >>> model = ad.Model("dinov2_vits14_pretrain.pth")
    >>> bank = ad.Bank.fit(model, good_images)          # list of (H, W, 3) uint8 arrays
    >>> r = bank.predict(test_image)
    >>> r.score, r.verdict, r.grid.shape
    >>> heat = ad.anomaly_map(r.grid, test_image.shape[1], test_image.shape[0])
    >>> res = ad.evaluate(model, "mvtec", "/data/mvtec", shots=(1, 2), seeds=3)  # the benchmark
    >>> res.cell(1, "mean", "image_auroc")                 # (mean, std, seeds)

The shared library is found, on first use, in this order: the ``ANOMALYDINO_LIB`` environment
variable (the library file, or its folder), the package folder, the build tree of a source
checkout (``build/libanomalydino.so.0``), then the system's library paths. Errors raise
:class:`AnomalyDinoError` carrying the status name (``.status``) and the library's one-line
reason (``.message``).
"""
from ._api import (AnomalyDinoError, Bank, BankParams, Context, ImageMetrics, Model, ModelInfo,
                   Nearest, PixelEval, PixelMetrics, Reference, Result, ThresholdRecord,
                   anomaly_map,
                   library_path, metrics_image, pixel_metrics, score_top1p, version, zeroshot)
from ._eval import EvalImage, EvalResults, EvalUnit, evaluate, merge
from .adapter import AnomalibAdapter, InferenceBatch

__version__ = "0.1.0"

__all__ = [
    "AnomalyDinoError", "Model", "ModelInfo", "Context", "Bank", "BankParams", "Result",
    "Reference", "ThresholdRecord", "Nearest", "anomaly_map", "score_top1p", "zeroshot",
    "metrics_image", "pixel_metrics", "PixelEval", "ImageMetrics", "PixelMetrics",
    "AnomalibAdapter", "InferenceBatch", "version", "library_path", "__version__",
    "evaluate", "merge", "EvalResults", "EvalUnit", "EvalImage",
]
