"""A gaze direction read from the head, and the gaze field it casts: optional Gaze-LLE extensions.

Gaze-LLE leans on DINOv2: its features already say which way a head turns, so a light decoder learns where the
person looks. A backbone trained from scratch on a few thousand images (the synthetic benchmark) must learn both
at once from the heatmap loss alone, and in a CPU budget it learns to find objects long before it learns which one
a person looks at. Two additions give it the shortcut the classic models had (Lian et al., ACCV 2018, "Believe it
or not, we know what you are looking at"; the gaze cone of Recasens et al. 2015):

- :class:`GazeDirectionHead`: a unit 2-D direction from the scene tokens under the head box, trained directly
  with the ``angular`` loss — a dense signal for the backbone's head features; or :class:`HeadCropDirection`,
  the same from a small CNN on the head crop (:func:`head_crops`), as the face pathway of Chong et al. — at 224 px
  a synthetic head is one or two patches wide, and a patch embedding sees its orientation poorly.
- :func:`gaze_field`: for every token, ``max(cos, 0) ** gamma`` of the angle between "head centre -> token" and
  that direction, for a few sharpnesses ``gamma``; the decoder gets them as prompts next to the head prompt, so it
  only has to pick the object on the ray rather than learn the geometry of rays.

No released checkpoint has these; they are off in every published configuration.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FIELD_GAMMAS = (1.0, 4.0, 16.0)
"""Sharpness of the field prompts: a wide cone (~60 deg at half height), a medium one, a narrow ray (~17 deg)."""


class GazeDirectionHead(nn.Module):
    """Mean scene token under each head box -> unit 2-D gaze direction (image plane, normalized coordinates)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 2))

    def forward(self, tokens: Tensor, head_maps: Tensor) -> Tensor:
        """``tokens`` [P, N, C], ``head_maps`` [P, rows, cols] with N = rows * cols -> [P, 2].

        A box covering no token (smaller than a patch at the border, or no box) pools the whole grid."""
        weights = head_maps.to(tokens.dtype).flatten(1)
        weights = torch.where(weights.sum(1, keepdim=True) > 0, weights, torch.ones_like(weights))
        pooled = (weights[:, :, None] * tokens).sum(1) / weights.sum(1, keepdim=True)
        return F.normalize(self.mlp(pooled), dim=1, eps=1e-6)


class HeadCropDirection(nn.Module):
    """Head crop [P, 3, S, S] (normalised) -> unit 2-D gaze direction: three stride-2 convolutions, mean pool, MLP."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for inputs, outputs in ((3, width // 2), (width // 2, width), (width, width)):
            layers += [
                nn.Conv2d(inputs, outputs, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(outputs),
                nn.ReLU(),
            ]
        self.cnn = nn.Sequential(*layers)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, 2))

    def forward(self, crops: Tensor) -> Tensor:
        return F.normalize(self.mlp(self.cnn(crops).mean(dim=(2, 3))), dim=1, eps=1e-6)


def head_crops(images: Tensor, boxes: Tensor, image_index: Tensor, size: int) -> Tensor:
    """Bilinear crops [P, 3, size, size] of normalized ``boxes`` from float ``images`` [B, 3, H, W] (one batched
    ``roi_align``; outside the picture reads zeros). A missing box (NaN row) crops the whole picture."""
    from torchvision.ops import roi_align

    height, width = images.shape[-2:]
    whole = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=images.dtype, device=images.device)
    boxes = torch.where(torch.isnan(boxes).any(1, keepdim=True), whole, boxes.to(images.dtype))
    scale = torch.tensor([width, height, width, height], dtype=images.dtype, device=images.device)
    rois = torch.cat([image_index.to(images.device, images.dtype)[:, None], boxes * scale], dim=1)
    return roi_align(images, rois, output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)


def gaze_field(boxes: Tensor, direction: Tensor, rows: int, cols: int, gammas: tuple[float, ...]) -> Tensor:
    """``[P, len(gammas), rows, cols]``: ``max(cos, 0) ** gamma`` between head centre -> token centre and
    ``direction``; differentiable in ``direction``. Boxes and directions share the normalized image frame; a
    missing box (NaN row) casts from the image centre."""
    centre = torch.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], dim=1)
    centre = torch.nan_to_num(centre.to(direction.dtype), nan=0.5)
    ys = (torch.arange(rows, device=direction.device, dtype=direction.dtype) + 0.5) / rows
    xs = (torch.arange(cols, device=direction.device, dtype=direction.dtype) + 0.5) / cols
    dx = xs[None, None, :] - centre[:, 0, None, None]
    dy = ys[None, :, None] - centre[:, 1, None, None]
    length = torch.sqrt(dx.square() + dy.square() + 1e-8)
    cosine = (dx * direction[:, 0, None, None] + dy * direction[:, 1, None, None]) / length
    front = cosine.clamp(min=0)
    return torch.stack([front.pow(gamma) for gamma in gammas], dim=1)
