"""PDP's video model (``ModelSpatialTemporal_PDP``): per-frame PDP tokens mixed across a window of frames.

No ConvLSTM: each frame's 50 tokens [512, 50] get a one-channel descriptor (``temporal_mapping``, a 512->1
Conv1d) plus a learned per-frame position; single-head attention over the window's descriptors gives frame
-to-frame weights, which mix the frames' projected tokens (``temporal_proj_1``). The mix is added to the
tokens and normalised over [512, 50]; the PDP heads then run per frame, and an extra in/out logit comes from
``fc_inout`` over the 50 tokens' ``compress_conv1_inout`` values. Windows (5 frames) are independent.

Through the common interface, people with ``clip_index``/``frame_step`` extras are cut into windows of
consecutive frames per clip (a clip's last, shorter window is filled by repeating its last frame); a person
without them is a still window (its frame repeated), so the model also answers single pictures.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gazelab.errors import GazelabError
from gazelab.models.backbones.resnet_vat import WIDTH
from gazelab.models.base import People
from gazelab.models.pdp import TOKENS, PDPSpatial, pdp_gaze_output
from gazelab.models.vat import ChongGazeOutput


class PDPTemporalOutput(NamedTuple):
    """Reference outputs, frames flattened window-major ([B * T, ...])."""

    heatmap: Tensor
    patch_logits: Tensor
    inout_logit: Tensor


class PDPTemporal(PDPSpatial):
    """Temporal PDP; ``frames`` is the window length the position embedding was trained for (5)."""

    def __init__(self, depth: bool = True, frames: int = 5, width: int = WIDTH) -> None:
        super().__init__(depth=depth, width=width)
        self.frames = frames
        self.temporal_pos_embed = nn.Parameter(torch.randn(frames, 1, TOKENS) * 0.02)
        self.temporal_mapping = nn.Conv1d(self.dim, 1, 1)
        # Only its attention weights are used; its value and output projections are in the files, unused.
        self.temporal_attention = nn.MultiheadAttention(TOKENS, 1)
        self.temporal_proj_1 = nn.Conv1d(self.dim, self.dim, 1)
        self.temporal_norm_1 = nn.LayerNorm([self.dim, TOKENS])
        self.fc_inout = nn.Linear(TOKENS, 1)

    def run_windows(self, scene: Tensor, head: Tensor, face: Tensor, depth: Tensor | None = None) -> PDPTemporalOutput:
        """Inputs [B, T, C, 224, 224] (T = ``frames``) -> per-frame outputs [B * T, ...]."""
        batch, frames = scene.shape[:2]
        if frames != self.frames:
            raise GazelabError(f"temporal PDP takes windows of {self.frames} frames, got {frames}")
        flat = [None if x is None else x.flatten(0, 1) for x in (scene, head, face, depth)]
        tokens = self.tokens(*flat).transpose(1, 2)  # [B*T, dim, 50]
        descriptor = self.temporal_mapping(tokens)[:, 0].view(batch, frames, TOKENS).transpose(0, 1)
        descriptor = descriptor + self.temporal_pos_embed
        _, weights = self.temporal_attention(descriptor, descriptor, descriptor, need_weights=True)
        values = self.temporal_proj_1(tokens).view(batch, frames, -1)
        mixed = (weights @ values).view_as(tokens)
        tokens = self.temporal_norm_1(tokens + mixed)
        out = self.heads(tokens.transpose(1, 2))
        inout = self.fc_inout(F.relu(self.compress_conv1_inout(tokens))[:, 0])
        return PDPTemporalOutput(out.heatmap, out.patch_logits, inout)

    def decode(self, features: Tensor, people: People) -> ChongGazeOutput:
        """Windows from the people's clips (see the module docstring); each person's answer from its window."""
        extras = people.extras
        index, answer = self.windows_of(people)

        def windows(x: Tensor | None) -> Tensor | None:
            return None if x is None else x[index]

        scene = features[people.image_index]
        out = self.run_windows(
            windows(scene), windows(extras["head_channel"]), windows(extras["faces"]), windows(self.depth_of(people))
        )
        return pdp_gaze_output(out.heatmap[answer], out.patch_logits[answer])

    def windows_of(self, people: People) -> tuple[Tensor, Tensor]:
        """(``index`` [W, frames] of people making each window, ``answer`` [P]: row of each person's output in
        the flattened [W * frames] window outputs)."""
        count = len(people)
        device = people.boxes.device
        if "clip_index" not in people.extras:
            index = torch.arange(count, device=device)[:, None].expand(count, self.frames)
            return index, torch.arange(count, device=device) * self.frames
        clip, step = people.extras["clip_index"], people.extras["frame_step"].long()
        order = torch.argsort(clip * (int(step.max()) + 1) + step)  # clip by clip, frames in order
        rows, answer = [], torch.empty(count, dtype=torch.long, device=device)
        for members in torch.split(order, torch.unique_consecutive(clip[order], return_counts=True)[1].tolist()):
            for start in range(0, len(members), self.frames):
                window = members[start : start + self.frames]
                answer[window] = len(rows) * self.frames + torch.arange(len(window), device=device)
                rows.append(torch.cat([window, window[-1:].expand(self.frames - len(window))]))
        return torch.stack(rows), answer
