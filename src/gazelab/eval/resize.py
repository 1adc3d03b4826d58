"""The two ways published evaluations bring a 64x64 heatmap to the original image size.

The GazeFollow AUC is computed at image resolution, and how the map is resized moves the third decimal:

* :func:`upsample_bilinear` — Gaze-LLE: ``torch.nn.functional.interpolate(..., mode="bilinear",
  align_corners=False)``. The edge half-pixel is clamped to the border value. Implemented by calling torch
  itself, because the float32 result (and therefore every tie between pixels) is defined by that kernel.
* :func:`resize_skimage` — PDP / GCDR: ``skimage.transform.resize(h, (H, W))`` (order 1, no anti-aliasing
  when upsampling), i.e. ``scipy.ndimage.zoom(grid_mode=True, mode="mirror")``: same sample positions, but
  the edge half-pixel is *mirrored*, the arithmetic is float64 and the result is cast back to the map's
  dtype and clipped to its range. Re-implemented here in torch (batched, CPU or GPU) with scipy's operation
  order so the cast values are identical; scikit-image is used only as the test oracle.

Chong et al. 2020 resized with ``scipy.misc.imresize``, which quantised the map to uint8 first; that function
was removed from SciPy and is deliberately not emulated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def upsample_bilinear(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """[B, h, w] -> [B, H, W] as Gaze-LLE's evaluation does (bilinear, ``align_corners=False``)."""
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def _mirror_taps(n_in: int, n_out: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Source indices and weights of each output sample along one axis, as ``ndimage.zoom`` computes them.

    Position ``(k + 0.5) * n_in / n_out - 0.5`` (float64); a negative position is mirrored (``-c``); a tap
    past the last sample is mirrored onto ``2 (n_in - 1) - i``. Weights: ``w0 = 1 - frac``, ``w1 = 1 - w0``
    (scipy makes the weights sum to 1 that way, which is not always ``frac`` in floating point).
    """
    if n_in < 2:
        raise ValueError("resize_skimage needs maps of at least 2x2")
    zoom = n_in / n_out
    position = (torch.arange(n_out, dtype=torch.float64, device=device) + 0.5) * zoom - 0.5
    position = torch.where(position < 0, -position, position)
    start = torch.floor(position)
    w0 = 1.0 - (position - start)
    w1 = 1.0 - w0
    i0 = start.to(torch.int64)
    i1 = i0 + 1
    i1 = torch.where(i1 > n_in - 1, 2 * (n_in - 1) - i1, i1)
    return i0, i1, w0, w1


def resize_skimage(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """[B, h, w] -> [B, H, W] equal to ``skimage.transform.resize(map, (H, W))`` per map (upsampling).

    Float64 accumulation in scipy's order (rows of taps, then columns: ``((v * wy) * wx)`` summed over the
    four taps), cast to the input dtype (float16 becomes float32, as in scikit-image), clipped per map to
    [min, max] of the input. Only meant for upsampling: downsampling would need scikit-image's anti-aliasing.
    """
    height, width = size
    if height < maps.shape[1] or width < maps.shape[2]:
        raise ValueError("resize_skimage only emulates upsampling (no anti-aliasing filter)")
    out_dtype = torch.float32 if maps.dtype in (torch.float16, torch.bfloat16) else maps.dtype
    source = maps.to(torch.float64)
    iy0, iy1, wy0, wy1 = _mirror_taps(maps.shape[1], height, maps.device)
    ix0, ix1, wx0, wx1 = _mirror_taps(maps.shape[2], width, maps.device)
    # Columns are gathered at the source's height (cheap), rows by whole-row copies; the arithmetic per
    # output value is still scipy's: ((v * wy) * wx) for the four taps, summed in tap order.
    left, right = source[:, :, ix0], source[:, :, ix1]
    wy0, wy1 = wy0[:, None], wy1[:, None]
    value = left[:, iy0].mul_(wy0).mul_(wx0)
    value += right[:, iy0].mul_(wy0).mul_(wx1)
    value += left[:, iy1].mul_(wy1).mul_(wx0)
    value += right[:, iy1].mul_(wy1).mul_(wx1)
    low, high = torch.aminmax(maps.to(out_dtype).flatten(1), dim=1)
    return torch.clamp(value.to(out_dtype), min=low[:, None, None], max=high[:, None, None])
