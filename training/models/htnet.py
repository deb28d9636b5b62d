"""HTNet (Wang et al., Neurocomputing 2024, arXiv 2307.14637) for 28x28 flow maps.

Same architecture and parameterisation as the authors' code, written
with plain reshapes so that it exports to ONNX without extra dependencies:

* patch embedding: non-overlapping p x p patches flattened in (row-in-patch, col-in-patch,
  channel) order, then a 1x1 convolution;
* hierarchy levels from the finest split to the whole map: at level L the map is cut into
  2^L x 2^L blocks and a transformer (pre-norm local self-attention and a 1x1-conv MLP,
  a learned per-position embedding) runs inside each block;
* between levels an aggregation: 3x3 conv (width doubles), channel LayerNorm, 3x3/2 max-pool;
* head: channel LayerNorm, mean over positions, linear layer -> logits.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import nn


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of an NCHW tensor (biased variance), per-channel affine."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gain = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = (x - mean).pow(2).mean(dim=1, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.gain + self.bias


class BlockAttention(nn.Module):
    """Multi-head self-attention among the positions of each block (1x1-conv projections)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        inner = self.head_dim * heads
        self.scale = self.head_dim ** -0.5
        self.to_qkv = nn.Conv2d(dim, inner * 3, 1, bias=False)
        self.drop = nn.Dropout(dropout)
        self.to_out = nn.Sequential(nn.Conv2d(inner, dim, 1), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = self.to_qkv(x).chunk(3, dim=1)

        def split_heads(t):  # (b, heads*d, h, w) -> (b, heads, h*w, d)
            return t.reshape(b, self.heads, self.head_dim, h * w).transpose(2, 3)

        q, k, v = split_heads(q), split_heads(k), split_heads(v)
        weights = torch.softmax(q @ k.transpose(2, 3) * self.scale, dim=-1)
        out = self.drop(weights) @ v  # (b, heads, h*w, d)
        out = out.transpose(2, 3).reshape(b, self.heads * self.head_dim, h, w)
        return self.to_out(out)


class ConvFeedForward(nn.Module):
    def __init__(self, dim: int, mult: int, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(dim, dim * mult, 1), nn.GELU(), nn.Dropout(dropout),
            nn.Conv2d(dim * mult, dim, 1), nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BlockTransformer(nn.Module):
    """`depth` pre-norm transformer layers applied inside each block of one level."""

    def __init__(self, dim: int, seq_len: int, depth: int, heads: int, mlp_mult: int,
                 dropout: float = 0.0):
        super().__init__()
        self.pos_emb = nn.Parameter(torch.randn(seq_len))
        self.layers = nn.ModuleList()
        for _ in range(depth):
            self.layers.append(nn.ModuleList([
                nn.Sequential(ChannelLayerNorm(dim), BlockAttention(dim, heads, dropout)),
                nn.Sequential(ChannelLayerNorm(dim), ConvFeedForward(dim, mlp_mult, dropout)),
            ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = x + self.pos_emb[: h * w].reshape(1, 1, h, w)
        for attention, feed_forward in self.layers:
            x = x + attention(x)
            x = x + feed_forward(x)
        return x


def aggregation(dim_in: int, dim_out: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(dim_in, dim_out, 3, padding=1),
        ChannelLayerNorm(dim_out),
        nn.MaxPool2d(3, stride=2, padding=1),
    )


def split_blocks(x: torch.Tensor, n: int) -> torch.Tensor:
    """(b, c, n*h, n*w) -> (b*n*n, c, h, w), blocks in row-major order."""
    b, c, hh, ww = x.shape
    h, w = hh // n, ww // n
    return x.reshape(b, c, n, h, n, w).permute(0, 2, 4, 1, 3, 5).reshape(b * n * n, c, h, w)


def merge_blocks(x: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of split_blocks."""
    bnn, c, h, w = x.shape
    b = bnn // (n * n)
    return x.reshape(b, n, n, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(b, c, n * h, n * w)


class HTNet(nn.Module):
    def __init__(
        self,
        *,
        image_size: int = 28,
        patch_size: int = 7,
        num_classes: int = 3,
        dim: int = 256,
        heads: int = 3,
        num_hierarchies: int = 3,
        block_repeats: Union[int, Sequence[int]] = (2, 2, 10),
        mlp_mult: int = 4,
        channels: int = 3,
        dropout: float = 0.0,
    ):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"HTNet: image_size {image_size} is not a multiple of patch_size {patch_size}")
        if isinstance(block_repeats, int):
            block_repeats = (block_repeats,) * num_hierarchies
        if len(block_repeats) != num_hierarchies:
            raise ValueError(f"HTNet: block_repeats {tuple(block_repeats)} needs {num_hierarchies} entries")
        self.config = dict(image_size=image_size, patch_size=patch_size, num_classes=num_classes,
                           dim=dim, heads=heads, num_hierarchies=num_hierarchies,
                           block_repeats=tuple(block_repeats), mlp_mult=mlp_mult,
                           channels=channels, dropout=dropout)
        self.patch_size = patch_size
        fmap = image_size // patch_size
        # As in the authors' code, the sequence length is that of a block at the finest level.
        seq_len = (fmap // 2 ** (num_hierarchies - 1)) ** 2
        seq_len = max(seq_len, 1)
        mults = [2 ** i for i in range(num_hierarchies)]  # width doubles at each coarser level
        dims = [dim * m for m in mults]
        self.patch_embed = nn.Conv2d(channels * patch_size ** 2, dims[0], 1)
        self.levels = nn.ModuleList()
        self.block_counts = []
        for i in range(num_hierarchies):
            level = num_hierarchies - 1 - i
            self.block_counts.append(2 ** level)
            last = i == num_hierarchies - 1
            self.levels.append(nn.ModuleList([
                BlockTransformer(dims[i], seq_len, block_repeats[i], heads * mults[i], mlp_mult, dropout),
                nn.Identity() if last else aggregation(dims[i], dims[i + 1]),
            ]))
        self.head_norm = ChannelLayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes)

    def embed_patches(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        p = self.patch_size
        h, w = hh // p, ww // p
        # (b, c, h, p1, w, p2) -> (b, p1, p2, c, h, w): the authors' (p1 p2 c) channel order
        x = x.reshape(b, c, h, p, w, p).permute(0, 3, 5, 1, 2, 4).reshape(b, p * p * c, h, w)
        return self.patch_embed(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed_patches(x)
        for n, (transformer, aggregate) in zip(self.block_counts, self.levels):
            x = merge_blocks(transformer(split_blocks(x, n)), n)
            x = aggregate(x)
        return self.head_norm(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def htnet_official(num_classes: int = 3) -> HTNet:
    """The configuration of the authors' main_HTNet.py (about 139.6M parameters)."""
    return HTNet(image_size=28, patch_size=7, num_classes=num_classes, dim=256, heads=3,
                 num_hierarchies=3, block_repeats=(2, 2, 10))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
