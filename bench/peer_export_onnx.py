#!/usr/bin/env python3
"""Exports the DINOv2 architecture of bench/torch_dinov2.py (random weights) to ONNX, one file
per input size, for the peer benchmark (bench/peer_bench.sh). Not a test; nothing downloaded.

    python3 bench/peer_export_onnx.py --out DIR [--model s] [--sizes 224,448,672]

Writes DIR/dinov2_<model>_<size>.onnx (input "x": 1 x 3 x size x size float32, output the
final-norm patch tokens) and checks each file with onnx.checker.
"""
import argparse
import os
import sys

import onnx
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_dinov2  # noqa: E402


class Fixed(torch.nn.Module):
    """The model at one input size, its interpolated positional embedding computed once in
    eager mode (torch 1.13 cannot trace bicubic with a scale factor; the result is a constant
    of the static-shape graph either way, and our forward pass caches it per context too)."""

    def __init__(self, model, size):
        super().__init__()
        self.m = model
        with torch.no_grad():
            self.register_buffer("pos", model.interpolate_pos_encoding(size, size).clone())

    def forward(self, x):
        m = self.m
        x = m.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat((m.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos
        for blk in m.blocks:
            x = blk(x)
        return m.norm(x)[:, 1:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default="s", choices=sorted(torch_dinov2.SHAPES))
    ap.add_argument("--sizes", default="224,448,672")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    if any(s < 14 or s % 14 for s in sizes):
        sys.exit("peer_export_onnx: sizes must be positive multiples of 14")
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(0)
    model = torch_dinov2.DinoV2(*torch_dinov2.SHAPES[a.model]).eval()
    for s in sizes:
        path = os.path.join(a.out, "dinov2_%s_%d.onnx" % (a.model, s))
        x = torch.randn(1, 3, s, s)
        fixed = Fixed(model, s).eval()
        with torch.no_grad():
            ref, got = model(x), fixed(x)
            if not torch.allclose(ref, got, atol=1e-5):
                sys.exit("peer_export_onnx: fixed-size model differs from the original")
            torch.onnx.export(fixed, (x,), path, input_names=["x"], output_names=["patch"],
                              opset_version=14, do_constant_folding=True)
        onnx.checker.check_model(onnx.load(path))
        print("exported %s (%.1f MB)" % (path, os.path.getsize(path) / 1e6))


if __name__ == "__main__":
    main()
