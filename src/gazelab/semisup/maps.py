"""Move a person's full-image target map with the image's augmentation (crop, flip) — GCDR's pseudo-labels.

A pseudo-label is a 64x64 map over the *original* image. When the training image is cropped and flipped,
its map must be cut and mirrored the same way, then resampled to 64x64 over the new image, or the target
would point elsewhere than the image. Resampling is bilinear (``grid_sample``); parts of a crop that stick
out of the image (square SemGaze crops) read as zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gazelab.data.transforms import AugmentParams


def augment_maps(maps: Tensor, params: AugmentParams | None, canvas_size: tuple[int, int], size: int = 64) -> Tensor:
    """[P, h, w] maps over an image of ``canvas_size`` (H, W) -> [P, size, size] over the augmented image."""
    if maps.numel() == 0:
        return maps.new_zeros((maps.shape[0], size, size))
    height, width = canvas_size
    top, left, crop_h, crop_w = (0, 0, height, width) if params is None or params.crop is None else params.crop
    centres = (torch.arange(size, dtype=torch.float64) + 0.5) / size  # output pixel centres, normalized
    xs = (left + centres * crop_w) / width
    if params is not None and params.flip:
        xs = (left + (1 - centres) * crop_w) / width
    ys = (top + centres * crop_h) / height
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack([grid_x, grid_y], dim=-1) * 2 - 1  # grid_sample's [-1, 1], align_corners=False
    grid = grid.to(maps.dtype if maps.is_floating_point() else torch.float32)[None].expand(maps.shape[0], -1, -1, -1)
    out = F.grid_sample(maps[:, None].float(), grid.float(), mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[:, 0]


def map_peaks(maps: Tensor) -> Tensor:
    """[P, h, w] -> [P, 2] normalized (x, y) of each map's maximum (pixel centre)."""
    height, width = maps.shape[-2:]
    flat = maps.flatten(1).argmax(dim=1)
    return torch.stack([(flat % width + 0.5) / width, (flat // width + 0.5) / height], dim=1).to(torch.float64)
