"""An anomalib-style inference adapter: a callable that maps a batch of images to the fields
of anomalib's inference output (``pred_score``, ``pred_label``, ``anomaly_map``,
``pred_mask``), so code written against anomalib's predictions can run on this pipeline."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Union

import numpy as np

from ._api import Bank, Context, anomaly_map
from ._lib import arg_error

MapBatch = Union[np.ndarray, List[np.ndarray]]

_KEYS = ("pred_score", "pred_label", "anomaly_map", "pred_mask")


@dataclass
class InferenceBatch:
    """anomalib-like predictions for a batch of N images.

    pred_score: float64 (N,). pred_label: bool (N,) (score above the bank's threshold), or None
    if the bank has no threshold. anomaly_map: float32 (N, H, W) when all images have one size,
    else a list of (H_i, W_i) arrays. pred_mask: anomaly_map > threshold (same layout), or None.
    Fields are attributes (anomalib >= 1.0) and also keys (``batch["pred_score"]``).
    """
    pred_score: np.ndarray
    pred_label: Optional[np.ndarray]
    anomaly_map: MapBatch
    pred_mask: Optional[MapBatch]

    def __getitem__(self, key: str) -> Any:
        if key not in _KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def keys(self) -> Iterator[str]:
        return iter(_KEYS)

    def __len__(self) -> int:
        return int(self.pred_score.shape[0])


def _to_hwc_uint8(a: Any, i: int) -> np.ndarray:
    if hasattr(a, "detach"):  # a torch tensor, without importing torch
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.dtype == np.uint8:
        if a.ndim == 3 and a.shape[2] != 3 and a.shape[0] == 3:
            a = a.transpose(1, 2, 0)
        return a
    if a.dtype.kind == "f":
        # anomalib / torchvision layout: float CHW in [0, 1] (ToTensor of uint8: v / 255)
        if a.ndim == 3 and a.shape[0] == 3 and a.shape[2] != 3:
            a = a.transpose(1, 2, 0)
        if not np.all(np.isfinite(a)) or a.min() < 0.0 or a.max() > 1.0:
            raise arg_error(f"batch[{i}]: float images must hold values in [0, 1]")
        return np.round(a * 255.0).astype(np.uint8)
    raise arg_error(f"batch[{i}]: dtype {a.dtype}, expected uint8 HWC or float CHW in [0, 1]")


def _images(batch: Any) -> List[np.ndarray]:
    if isinstance(batch, dict):
        if "image" not in batch:
            raise arg_error("batch: a dict batch needs an 'image' entry")
        batch = batch["image"]
    elif hasattr(batch, "image") and not isinstance(batch, np.ndarray):
        batch = batch.image
    if hasattr(batch, "detach"):
        batch = batch.detach().cpu().numpy()
    if isinstance(batch, np.ndarray):
        if batch.ndim == 3:       # one image
            return [_to_hwc_uint8(batch, 0)]
        if batch.ndim != 4:
            raise arg_error(f"batch: shape {batch.shape}, expected (N, H, W, 3) uint8 or "
                            "(N, 3, H, W) float")
        return [_to_hwc_uint8(batch[i], i) for i in range(batch.shape[0])]
    return [_to_hwc_uint8(a, i) for i, a in enumerate(batch)]


class AnomalibAdapter:
    """``adapter(batch) -> InferenceBatch`` over a fitted :class:`Bank`.

    batch: (N, H, W, 3) uint8, (N, 3, H, W) float in [0, 1] (torch tensors accepted), a list of
    images, or a dict / object with an ``image`` entry. Each image is predicted with
    :meth:`Bank.predict` and its grid turned into a full-size map with :func:`anomaly_map`.
    """

    def __init__(self, bank: Bank, *, mask: Optional[bool] = None,
                 context: Optional[Context] = None) -> None:
        if not isinstance(bank, Bank):
            raise arg_error(f"bank: expected a Bank, got {type(bank).__name__}")
        self.bank = bank
        self.mask = mask
        self.context = context

    @property
    def threshold(self) -> Optional[float]:
        return self.bank.threshold

    def __call__(self, batch: Any) -> InferenceBatch:
        imgs = _images(batch)
        if not imgs:
            raise arg_error("batch: no images")
        thr = self.bank.threshold
        scores = np.empty(len(imgs), dtype=np.float64)
        maps: List[np.ndarray] = []
        for i, im in enumerate(imgs):
            r = self.bank.predict(im, self.mask, context=self.context)
            scores[i] = r.score
            maps.append(anomaly_map(r.grid, im.shape[1], im.shape[0]))
        same = all(m.shape == maps[0].shape for m in maps)
        amap: MapBatch = np.stack(maps) if same else maps
        if thr is None:
            return InferenceBatch(scores, None, amap, None)
        masks: MapBatch = (amap > thr) if same else [m > thr for m in maps]  # type: ignore
        return InferenceBatch(scores, scores > thr, amap, masks)
