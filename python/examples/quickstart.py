#!/usr/bin/python3
# %% [markdown]
# # anomalydino from Python: a walk-through
#
# Written like a notebook: each `# %%` block is a cell (VS Code, Jupyter with jupytext, or just
# `python3 python/examples/quickstart.py` from the repository root). It uses the bundled
# synthetic washers in `samples/` and, unless `ANOMALYDINO_WEIGHTS` names real DINOv2 weights,
# the tiny random test model - the numbers then only show the mechanics, not real accuracy.
#
# Needs: `make build` (the shared library), numpy, and Pillow to read the PNGs (any decoder
# that gives uint8 RGB arrays will do: the package itself takes arrays, not files).

# %%
import glob
import os
import sys
import tempfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "python"))  # not needed once `pip install ./python`
import anomalydino as ad  # noqa: E402

print("library:", ad.library_path(), "version", ad.version())


def load(path):
    """A PNG/JPEG as the uint8 (H, W, 3) RGB array the package expects."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# %% [markdown]
# ## 1. Load the weights
# A `.pth` hub checkpoint or a Hugging Face `model.safetensors`; the architecture is read from
# the tensors. `threads=0` would use every core.

# %%
weights = os.environ.get("ANOMALYDINO_WEIGHTS",
                         os.path.join(REPO, "tests", "data", "dinov2", "tiny.safetensors"))
model = ad.Model(weights, threads=2)
print(model.info)

# %% [markdown]
# ## 2. Features of one image
# `(patch, cls)`: patch tokens on the 14-pixel grid, `(grid_h, grid_w, dim)`, and the CLS
# token. At resolution 448 a 320 x 320 image is resized to 448 x 448: a 32 x 32 grid.

# %%
good_paths = sorted(glob.glob(os.path.join(REPO, "samples", "good", "*.png")))
test_paths = sorted(glob.glob(os.path.join(REPO, "samples", "test", "*.png")))
patch, cls = model.features(load(good_paths[0]), resolution=448)
print("patch", patch.shape, patch.dtype, "cls", cls.shape)

# %% [markdown]
# ## 3. Fit a memory bank on good parts
# Defaults as `anomalydino fit`: resolution 448, 8 rotations of every reference, no masking,
# 1 neighbour, and a threshold from leave-one-out over the references (`"max"`: no false
# alarm on them). `threshold="quantile:0.95"`, a number, `None`, or `calibration=[...]`
# (held-out good images) are the alternatives.

# %%
good = [load(p) for p in good_paths]
bank = ad.Bank.fit(model, good)
print(bank)
bank_file = os.path.join(tempfile.gettempdir(), "washer.adbank")
bank.save(bank_file)  # the CLI reads it: anomalydino predict -m WEIGHTS -b BANK IMAGES

# %% [markdown]
# ## 4. Predict
# `Result(score, verdict, grid, keep)`: the image score (mean of the top 1 % patch
# distances), "OK"/"NG" against the threshold, the patch-distance grid and the mask used.

# %%
for p in test_paths:
    r = bank.predict(load(p))
    print(f"{os.path.basename(p):20s} score {r.score:.6f}  {r.verdict}  grid {r.grid.shape}")

# %% [markdown]
# ## 5. A heat map at the image's size
# Bilinear upsampling of the grid, then a Gaussian blur (sigma 4), as the CLI's `--maps`.

# %%
img = load(test_paths[3])
r = bank.predict(img)
heat = ad.anomaly_map(r.grid, img.shape[1], img.shape[0])
print("map", heat.shape, heat.dtype, "max at", np.unravel_index(heat.argmax(), heat.shape))
# e.g. with matplotlib: plt.imshow(img); plt.imshow(heat, alpha=0.5, cmap="inferno")

# %% [markdown]
# ## 6. Metrics
# Image AUROC / AP / F1-max from labels and scores (here: the two held-out good parts are
# normal, the three defects anomalous).

# %%
labels = [0 if "good" in os.path.basename(p) else 1 for p in test_paths]
scores = [bank.predict(load(p)).score for p in test_paths]
print(ad.metrics_image(labels, scores))

# %% [markdown]
# ## 7. Zero-shot: no references at all
# Each image of a batch against the patches of all the others (paper, Appendix D).

# %%
for p, zr in zip(test_paths, ad.zeroshot(model, [load(p) for p in test_paths], resolution=448)):
    print(f"{os.path.basename(p):20s} zero-shot score {zr.score:.6f}")

# %% [markdown]
# ## 8. anomalib-style output
# Code written against anomalib's predictions (`pred_score`, `pred_label`, `anomaly_map`,
# `pred_mask`) can take the adapter's output: batches of uint8 NHWC arrays, float NCHW in
# [0, 1] (anomalib/torchvision tensors), or lists.

# %%
predict_batch = ad.AnomalibAdapter(bank)
out = predict_batch(np.stack([load(p) for p in test_paths]))
print("pred_score", np.round(out.pred_score, 6), "pred_label", out.pred_label,
      "anomaly_map", out.anomaly_map.shape)

# %% [markdown]
# ## 9. Threads
# A model is shared; each thread uses its own context (the model makes one per thread when
# none is passed). The library releases the GIL while it computes.

# %%
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

with ThreadPoolExecutor(max_workers=2) as pool:
    scores2 = list(pool.map(lambda p: bank.predict(load(p)).score, test_paths))
print("same scores from 2 threads:", scores2 == scores)
