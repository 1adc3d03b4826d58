"""A multi-layer ConvLSTM with the parameter layout of the VAT checkpoints (``weight_ih_l0``, ``bias_hh_l1``, ...).

Gates ``i, f, g, o`` (in that order along the output channels) come from ``conv(x, W_ih) + conv(h, W_hh)``
with "same" padding. Sequences of different lengths are given packed, time-major (rows of step ``t`` are the
first ``batch_sizes[t]`` sequences), as in ``torch.nn.utils.rnn.PackedSequence``; a sequence that has ended
keeps its last state, so the returned state is each sequence's final one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gazelab.errors import GazelabError

State = tuple[Tensor, Tensor]
"""(h, c), each [layers, batch, channels, height, width]."""


def packed_order(clip_index: Tensor, frame_step: Tensor) -> tuple[Tensor, list[int]]:
    """Rows of several clips in any order -> (permutation into packed time-major order, ``batch_sizes``).

    ``clip_index`` [N] names each row's clip and ``frame_step`` [N] its position (0, 1, ... without gaps) in the
    clip. Clips are ordered longest first (ties by clip index), as a ``PackedSequence`` wants.
    """
    clips, position, lengths = torch.unique(clip_index, return_inverse=True, return_counts=True)
    rank = torch.empty_like(lengths)
    rank[torch.sort(-lengths, stable=True).indices] = torch.arange(len(clips), device=lengths.device)
    key = frame_step.long() * len(clips) + rank[position]
    if bool((frame_step < 0).any() | (frame_step >= lengths[position]).any()) or len(key.unique()) != len(key):
        raise GazelabError("each clip's frame_step must number its frames 0, 1, ... once each")
    order = torch.argsort(key)
    batch_sizes = [int((lengths > step).sum()) for step in range(int(lengths.max()))]
    return order, batch_sizes


class ConvLSTM(nn.Module):
    """Unidirectional ConvLSTM; dropout between layers (training only)."""

    def __init__(self, channels: int, layers: int, kernel: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        self.channels, self.layers, self.dropout = channels, layers, dropout
        self.padding = kernel // 2
        for layer in range(layers):
            for kind in ("ih", "hh"):
                weight = torch.empty(4 * channels, channels, kernel, kernel)
                nn.init.uniform_(weight, -(channels**-0.5), channels**-0.5)
                self.register_parameter(f"weight_{kind}_l{layer}", nn.Parameter(weight))
                self.register_parameter(f"bias_{kind}_l{layer}", nn.Parameter(torch.zeros(4 * channels)))

    def zero_state(self, batch: int, like: Tensor) -> State:
        shape = (self.layers, batch, self.channels, *like.shape[-2:])
        return like.new_zeros(shape), like.new_zeros(shape)

    def _conv(self, kind: str, layer: int, x: Tensor) -> Tensor:
        weight, bias = getattr(self, f"weight_{kind}_l{layer}"), getattr(self, f"bias_{kind}_l{layer}")
        return F.conv2d(x, weight, bias, padding=self.padding)

    def _cell(self, layer: int, x: Tensor, h: Tensor, c: Tensor) -> State:
        gates = self._conv("ih", layer, x) + self._conv("hh", layer, h)
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def forward(self, packed: Tensor, batch_sizes: list[int], state: State | None = None) -> tuple[Tensor, State]:
        """``packed`` [sum(batch_sizes), C, H, W] -> (last layer's output, same rows; final (h, c))."""
        if state is None:
            state = self.zero_state(batch_sizes[0], packed)
        h, c = list(state[0].unbind(0)), list(state[1].unbind(0))
        outputs = []
        start = 0
        for size in batch_sizes:
            x = packed[start : start + size]
            start += size
            for layer in range(self.layers):
                if layer and self.dropout:
                    x = F.dropout(x, self.dropout, self.training)
                h_new, c_new = self._cell(layer, x, h[layer][:size], c[layer][:size])
                h[layer] = torch.cat([h_new, h[layer][size:]])  # ended sequences keep their state
                c[layer] = torch.cat([c_new, c[layer][size:]])
                x = h_new
            outputs.append(x)
        return torch.cat(outputs), (torch.stack(h), torch.stack(c))
