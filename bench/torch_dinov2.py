#!/usr/bin/env python3
"""The DINOv2 forward pass in PyTorch, for timing against bench_backbone (not a test).

The same architecture as the official model code (facebookresearch/dinov2
vision_transformer.py with the hub settings: patch 14, 37x37+1 positional grid, pre-norm
blocks with LayerScale, LayerNorm eps 1e-6, exact GELU or SwiGLU; the eager attention path of
layers/attention.py: q * scale @ k^T, softmax, @ v), random weights, a random input of the same
size, eval mode under torch.inference_mode(). Prints seconds per image like bench_backbone.

    python3 bench/torch_dinov2.py [--model s|b|l|g] [--size 448] [--runs 5] [--threads 2]
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SHAPES = {  # dim, depth, heads, ffn hidden, swiglu (vision_transformer.py vit_small ... giant2)
    "s": (384, 12, 6, 1536, False),
    "b": (768, 12, 12, 3072, False),
    "l": (1024, 24, 16, 4096, False),
    "g": (1536, 40, 24, 4096, True),
}


class Block(nn.Module):
    def __init__(self, dim, heads, hidden, swiglu):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ls1 = nn.Parameter(0.1 * torch.ones(dim))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.swiglu = swiglu
        if swiglu:
            self.w12 = nn.Linear(dim, 2 * hidden)
            self.w3 = nn.Linear(hidden, dim)
        else:
            self.fc1 = nn.Linear(dim, hidden)
            self.fc2 = nn.Linear(hidden, dim)
        self.ls2 = nn.Parameter(0.1 * torch.ones(dim))

    def attn(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        a = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        x = (a @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)

    def ffn(self, x):
        if self.swiglu:
            x1, x2 = self.w12(x).chunk(2, dim=-1)
            return self.w3(F.silu(x1) * x2)
        return self.fc2(F.gelu(self.fc1(x)))

    def forward(self, x):
        x = x + self.ls1 * self.attn(self.norm1(x))
        return x + self.ls2 * self.ffn(self.norm2(x))


class DinoV2(nn.Module):
    def __init__(self, dim, depth, heads, hidden, swiglu):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=14, stride=14)
        self.cls_token = nn.Parameter(0.02 * torch.randn(1, 1, dim))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, 1 + 37 * 37, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, hidden, swiglu) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def interpolate_pos_encoding(self, h, w):
        # vision_transformer.py: bicubic with scale factor (g + 0.1) / 37 (models without registers)
        gh, gw = h // 14, w // 14
        if gh * gw == 37 * 37 and gh == gw:
            return self.pos_embed
        cls, grid = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        grid = grid.reshape(1, 37, 37, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, scale_factor=((gh + 0.1) / 37, (gw + 0.1) / 37), mode="bicubic",
                             align_corners=False)
        return torch.cat((cls, grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)), dim=1)

    def forward(self, x):
        _, _, h, w = x.shape
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.interpolate_pos_encoding(h, w)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)[:, 1:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="s", choices=sorted(SHAPES))
    ap.add_argument("--size", type=int, default=448)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dim, depth, heads, hidden, swiglu = SHAPES[a.model]
    model = DinoV2(dim, depth, heads, hidden, swiglu).eval()
    x = torch.randn(1, 3, a.size, a.size)
    with torch.inference_mode():
        model(x)  # warm-up
        times = []
        for _ in range(a.runs):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    print("torch %s: model %s, input %dx%d, threads %d: %.3f s/image best, %.3f mean of %d"
          % (torch.__version__, a.model, a.size, a.size, torch.get_num_threads(), min(times),
             sum(times) / len(times), a.runs))


if __name__ == "__main__":
    main()
