"""A trained HTNet recomputed on channel-last tokens, for export.

The training module (training/models/htnet.py) keeps the authors' NCHW layout: 1x1
convolutions, and a LayerNorm over the channel axis written out as mean, variance, sqrt and
divide. Exported as is, each of those is its own ONNX node and a batch-1 call is mostly
per-node dispatch. The same arithmetic on (tokens, channels) rows exports as Gemm and
LayerNormalization nodes instead: fewer nodes, about half the latency for the edge models
(`python -m microexp.export.bench`, docs/benchmarks.md). Same parameters,
shared with the wrapped module, so the export's parity check against the original HTNet
verifies the rewrite. Inference only: dropout is not applied.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from microexp.training.models.htnet import BlockAttention, ChannelLayerNorm, ConvFeedForward, HTNet


def _layer_norm(rows: torch.Tensor, norm: ChannelLayerNorm) -> torch.Tensor:
    width = norm.gain.numel()  # a Python int, so the export sees a constant shape
    return F.layer_norm(rows, (width,), norm.gain.reshape(width), norm.bias.reshape(width), norm.eps)


def _linear(rows: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """A 1x1 convolution applied to channel-last rows."""
    return F.linear(rows, conv.weight.reshape(conv.weight.shape[0], -1), conv.bias)


class TokenHTNet(nn.Module):
    """`TokenHTNet(htnet)(x)` equals `htnet(x)` (float rounding aside) for NCHW input x."""

    def __init__(self, net: HTNet):
        super().__init__()
        if not isinstance(net, HTNet):
            raise TypeError(f"TokenHTNet: expected an HTNet, got {type(net).__name__}")
        self.net = net
        self.fmap = net.config["image_size"] // net.config["patch_size"]

    @staticmethod
    def _attention(rows: torch.Tensor, att: BlockAttention, positions: int) -> torch.Tensor:
        """Rows ordered (block, position); attention among the positions of each block."""
        inner = att.heads * att.head_dim
        # (blocks, positions, 3*heads, d) -> (blocks, 3*heads, positions, d): q, k, v heads.
        qkv = _linear(rows, att.to_qkv).reshape(-1, positions, 3 * att.heads, att.head_dim).transpose(1, 2)
        q, k, v = qkv.chunk(3, dim=1)
        weights = torch.softmax(q @ k.transpose(2, 3) * att.scale, dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(-1, inner)
        return _linear(out, att.to_out[0])

    @staticmethod
    def _feed_forward(rows: torch.Tensor, ff: ConvFeedForward) -> torch.Tensor:
        hidden = F.gelu(_linear(rows, ff.net[0]))
        return _linear(hidden, ff.net[3])

    def _transformer(self, rows, transformer, positions: int, width: int):
        rows = rows.reshape(-1, positions, width) + transformer.pos_emb[:positions].reshape(1, positions, 1)
        rows = rows.reshape(-1, width)
        for (norm1, attention), (norm2, feed_forward) in transformer.layers:
            rows = rows + self._attention(_layer_norm(rows, norm1), attention, positions)
            rows = rows + self._feed_forward(_layer_norm(rows, norm2), feed_forward)
        return rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        c, p = net.config["channels"], net.patch_size
        rows_n = cols_n = self.fmap
        # Patches in the authors' (row-in-patch, col-in-patch, channel) order, channel-last.
        t = x.reshape(-1, c, rows_n, p, cols_n, p).permute(0, 2, 4, 3, 5, 1).reshape(-1, rows_n, cols_n, p * p * c)
        t = _linear(t, net.patch_embed)  # (b, rows, cols, width)
        for n, (transformer, aggregate) in zip(net.block_counts, net.levels):
            width = transformer.layers[0][0][0].gain.numel()
            h, w = rows_n // n, cols_n // n
            # (b, n, h, n, w, width) -> rows ordered (b, block row, block col, position)
            rows = t.reshape(-1, n, h, n, w, width).permute(0, 1, 3, 2, 4, 5).reshape(-1, width)
            rows = self._transformer(rows, transformer, h * w, width)
            t = rows.reshape(-1, n, n, h, w, width).permute(0, 1, 3, 2, 4, 5).reshape(-1, rows_n, cols_n, width)
            if not isinstance(aggregate, nn.Identity):
                conv, norm, pool = aggregate
                y = conv(t.permute(0, 3, 1, 2))
                y = _layer_norm(y.permute(0, 2, 3, 1), norm).permute(0, 3, 1, 2)
                t = pool(y).permute(0, 2, 3, 1)
                rows_n, cols_n = (rows_n + 1) // 2, (cols_n + 1) // 2  # 3x3/2 max-pool, padding 1
        return net.head(_layer_norm(t, net.head_norm).mean(dim=(1, 2)))
