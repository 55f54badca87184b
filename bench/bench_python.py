#!/usr/bin/python3
"""Python's Bank.predict against the CLI's per-image time, measured in one run (issue 12).

    /usr/bin/python3 bench/bench_python.py [--build build] [--threads 2] [--rounds 3]
                                           [--models tiny,s]

For each model (tiny: the bundled test model; s: random weights of ViT-S/14's size, written to
a temporary safetensors file), a 1-shot bank with rotation (8 x 1024 rows at 448) is fitted by
the CLI on samples/good/washer_01.png, then, in alternating rounds:

  cli      `anomalydino predict --format json` on samples/test: its time_ms per image
           (PNG decoding + preprocessing + features + search + score);
  py       the same images in this process: Pillow decoding + bank.predict(array);
  py_pred  bank.predict on the already decoded array (what bank.predict costs alone).

Medians over all images and rounds; ratios py / cli and py_pred / cli. The process startup of
the CLI (loading the weights and the bank) is not in time_ms, and loading is done once in
Python too, outside the timing.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "python"))


def write_vits14(path, tiny):
    """Random weights in the layout of tiny.safetensors scaled to ViT-S/14 (384 dims, 12
    blocks, 6 heads, MLP 1536): the speed of the real model, no download."""
    import struct
    with open(tiny, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
    rng = np.random.default_rng(0)
    tensors = {}
    for k, v in head.items():
        if k == "__metadata__" or not k.startswith(("embeddings.", "encoder.layer.0.",
                                                      "layernorm.")):
            continue
        shape = [384 if d == 128 else 1536 if d == 512 else d for d in v["shape"]]
        keys = [k] if not k.startswith("encoder.layer.0.") else \
            [k.replace("layer.0.", f"layer.{i}.") for i in range(12)]
        for kk in keys:
            a = rng.standard_normal(shape).astype(np.float32)
            if kk.endswith(("norm1.weight", "norm2.weight", "layernorm.weight")):
                a = 1.0 + 0.1 * a
            elif kk.endswith("lambda1"):
                a = 0.1 * a
            else:
                a *= 0.02
            tensors[kk] = a
    hdr, off = {}, 0
    for k, a in tensors.items():
        hdr[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    hb = json.dumps(hdr).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for a in tensors.values():
            f.write(a.tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default="tiny,s")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    os.environ.setdefault("ANOMALYDINO_LIB", os.path.join(args.build, "libanomalydino.so.0"))
    import anomalydino as ad
    from PIL import Image

    cli = os.path.join(args.build, "anomalydino")
    tests = sorted(os.path.join(REPO, "samples", "test", f)
                   for f in os.listdir(os.path.join(REPO, "samples", "test")))
    ref = os.path.join(REPO, "samples", "good", "washer_01.png")
    tiny = os.path.join(REPO, "tests", "data", "dinov2", "tiny.safetensors")
    env = dict(os.environ, ANOMALYDINO_QUIET="1")
    print(f"library {ad.library_path()}, {args.threads} threads, {len(tests)} images x "
          f"{args.rounds} rounds, 1-shot bank with rotation at 448")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            weights = tiny
            if name == "s":
                weights = os.path.join(tmp, "vits14_random.safetensors")
                write_vits14(weights, tiny)
            bank_path = os.path.join(tmp, f"{name}.adbank")
            subprocess.run([cli, "fit", "-m", weights, "-o", bank_path, "--threads",
                            str(args.threads), ref], check=True, env=env, capture_output=True)
            model = ad.Model(weights, threads=args.threads)
            bank = ad.Bank.load(bank_path, model)
            decoded = [np.asarray(Image.open(p).convert("RGB")) for p in tests]
            bank.predict(decoded[0])  # warm-up (thread pools), as the CLI's first image is not
            t_cli, t_py, t_pred = [], [], []
            for _ in range(args.rounds):
                out = subprocess.run([cli, "predict", "-m", weights, "-b", bank_path,
                                      "--threads", str(args.threads), "--format", "json",
                                      *tests], check=True, env=env, capture_output=True,
                                     text=True).stdout
                rows = json.loads(out)["results"]
                by_image = {r["image"]: r for r in rows}
                t_cli += [by_image[p]["time_ms"] for p in tests]
                for p, arr in zip(tests, decoded):
                    t0 = time.perf_counter()
                    img = np.asarray(Image.open(p).convert("RGB"))
                    r = bank.predict(img)
                    t1 = time.perf_counter()
                    bank.predict(arr)
                    t2 = time.perf_counter()
                    t_py.append(1e3 * (t1 - t0))
                    t_pred.append(1e3 * (t2 - t1))
                    # the same computation (the JSON carries 15-17 significant digits)
                    assert abs(r.score - by_image[p]["score"]) <= 1e-12 * max(1.0, r.score)
            c, p_, q = (statistics.median(t) for t in (t_cli, t_py, t_pred))
            # paired: each image of each round against the CLI's time for it in that round
            rp = statistics.median(a / b for a, b in zip(t_py, t_cli))
            rq = statistics.median(a / b for a, b in zip(t_pred, t_cli))
            print(f"{name} ({model.info.dim} dims, {model.info.depth} blocks), median ms per "
                  f"image: cli {c:.1f}, py decode + predict {p_:.1f}, py bank.predict {q:.1f}; "
                  f"median paired ratio to cli: {rp:.3f} (decode + predict), {rq:.3f} "
                  f"(bank.predict)")
            bank.close()
            model.close()


if __name__ == "__main__":
    main()
