"""Training targets and model inputs derived from coordinates, with the exact semantics of the references.

Published numbers depend on small details — where a Gaussian's window starts, how a box is rounded to a
grid — so each function here reproduces one reference rule bit for bit (tests compare against slow loops
written after the original code), but works on whole batches at once.

Two Gaussian placement rules exist (both: sigma 3, a (6 sigma + 1)^2 window clipped at the borders, the map
divided by its maximum so the peak is 1, float32 output):

- ``"gazelle"`` (Gaze-LLE ``get_heatmap``): the centre is the cell ``(int(x*64), int(y*64))``.
- ``"chong"`` (Chong 2020 ``draw_labelmap``, reused by PDP and GCDR): the window starts at
  ``int(x*64 - 3 sigma)`` with truncation toward zero, so for ``x*64 < 9`` with a fraction the peak lands one
  cell right of ``int(x*64)`` (and the window is one cell shorter). Identical to ``"gazelle"`` elsewhere.

Points are normalized ``(x, y)``; a point with a negative coordinate (the ``-1`` padding of missing
annotators and out-of-frame targets) draws nothing, and a person with no valid point gets an all-zero map.
Pass coordinates as float64 (the references compute in double precision) for bit-exact results.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

HEATMAP_SIZE = 64
SIGMA = 3
PATCHES = 7
"""PDP's patch grid: 7x7 cells of 64 // 7 = 9 heatmap cells, plus one "outside the frame" entry."""

GaussianRule = Literal["gazelle", "chong"]


def _window_start(pixels: Tensor, sigma: int, rule: GaussianRule) -> Tensor:
    """First map cell of the Gaussian window (may be negative) for points already scaled to map cells."""
    if rule == "gazelle":
        return torch.trunc(pixels) - 3 * sigma
    if rule == "chong":
        return torch.trunc(pixels - 3 * sigma)
    raise ValueError(f"unknown Gaussian rule {rule!r}; use 'gazelle' or 'chong'")


def _gaussian_windows(points: Tensor, size: int, sigma: int, rule: GaussianRule) -> tuple[Tensor, Tensor]:
    """Unnormalised float64 windows [..., size, size] and whether each point draws at all.

    ``draw_labelmap`` skips a point whose window lies entirely off the map; valid normalized points never do.
    """
    pixels = points.to(torch.float64) * size
    start = _window_start(pixels, sigma, rule)
    end = torch.trunc(pixels + 3 * sigma + 1)
    valid = (points >= 0).all(-1)
    draws = valid & (start < size).all(-1) & (end >= 0).all(-1)
    cells = torch.arange(size, dtype=torch.float64, device=points.device)
    # Offsets from the window centre along x (columns) and y (rows); cells outside [start, end) get nothing.
    offset = cells - (start[..., None] + 3 * sigma)
    inside = (cells >= start[..., None]) & (cells < end[..., None])
    dx, dy = offset[..., 0, None, :], offset[..., 1, :, None]
    gauss = torch.exp(-(dx**2 + dy**2) / (2 * sigma**2))
    mask = inside[..., 0, None, :] & inside[..., 1, :, None] & draws[..., None, None]
    return torch.where(mask, gauss, torch.zeros((), dtype=torch.float64, device=points.device)), valid


def _normalise_peak(maps: Tensor) -> Tensor:
    peak = maps.amax(dim=(-2, -1), keepdim=True)
    return torch.where(peak > 0, maps / torch.where(peak > 0, peak, 1.0), maps)


def gaussian_heatmaps(
    points: Tensor, size: int = HEATMAP_SIZE, sigma: int = SIGMA, rule: GaussianRule = "gazelle"
) -> Tensor:
    """One Gaussian target per point: ``points`` [..., 2] -> float32 [..., size, size] with peak 1.

    This is the training target of every reference (first/only annotator). PDP's GazeFollow test map is this
    function applied to the mean of the annotator points.
    """
    windows, _ = _gaussian_windows(points, size, sigma, rule)
    return _normalise_peak(windows.to(torch.float32))


def annotator_heatmaps(
    points: Tensor, size: int = HEATMAP_SIZE, sigma: int = SIGMA, rule: GaussianRule = "chong"
) -> Tensor:
    """The multi-annotator map of Chong's GazeFollow test set: ``points`` [..., A, 2] -> [..., size, size].

    The reference draws the annotators one after the other, adding each Gaussian (in double precision, stored
    as float32) and dividing the whole map by its maximum after every addition, then divides the result by
    the number of valid annotators — so earlier annotators weigh less than later ones. With one annotator it
    equals :func:`gaussian_heatmaps`. Padding points (``-1``) are skipped.
    """
    windows, valid = _gaussian_windows(points, size, sigma, rule)
    maps = torch.zeros(windows.shape[:-3] + (size, size), dtype=torch.float32, device=points.device)
    for k in range(windows.shape[-3]):
        added = (maps.to(torch.float64) + windows[..., k, :, :]).to(torch.float32)
        drawn = (windows[..., k, :, :] > 0).any(dim=(-2, -1), keepdim=True)
        maps = torch.where(drawn, _normalise_peak(added), maps)
    count = valid.sum(-1).to(torch.float32)[..., None, None]
    return torch.where(count > 0, maps / count.clamp_min(1), maps)


def head_channel(boxes: Tensor, size: int = 224) -> Tensor:
    """Chong's binary head-box channel: ``boxes`` [..., 4] normalized xyxy -> float32 [..., size, size].

    As ``get_head_box_channel``: ``int(box * size)`` (truncation), clipped to ``[0, size - 1]``, then
    ``mask[y1:y2, x1:x2] = 1`` (end exclusive, so the last row/column is never set). A NaN box gives zeros.
    """
    edges = torch.trunc(boxes.to(torch.float64) * size).clamp(0, size - 1)
    return _box_masks(edges, size)


def head_token_map(boxes: Tensor, size: int = 32) -> Tensor:
    """Gaze-LLE's head map: ``round(box * size)`` with round-half-to-even, ``mask[y1:y2, x1:x2] = 1``.

    A box that rounds to zero size gives an empty map, as does a NaN box (a person without a head box).
    """
    edges = torch.round(boxes.to(torch.float64) * size).clamp(0, size)
    return _box_masks(edges, size)


def _box_masks(edges: Tensor, size: int) -> Tensor:
    cells = torch.arange(size, dtype=torch.float64, device=edges.device)
    cols = (cells >= edges[..., 0, None]) & (cells < edges[..., 2, None])
    rows = (cells >= edges[..., 1, None]) & (cells < edges[..., 3, None])
    return (rows[..., :, None] & cols[..., None, :]).to(torch.float32)


def patch_distribution(heatmaps: Tensor, inout: Tensor, patches: int = PATCHES) -> Tensor:
    """PDP's target: ``heatmaps`` [..., 64, 64] and ``inout`` [...] (1 in frame, 0 out) -> [..., patches^2 + 1].

    Each of the 7x7 cells of ``64 // 7 = 9`` heatmap cells (covering rows/columns 0..62) takes the maximum of
    the Gaussian inside it; ``1 - inout`` is appended for the "outside" token and the vector is divided by its
    sum. An out-of-frame person (zero map) gets all mass on the last entry. A zero vector (in frame but no
    Gaussian) stays zero instead of becoming NaN.
    """
    cell = heatmaps.shape[-1] // patches
    span = cell * patches
    grid = heatmaps[..., :span, :span].unflatten(-2, (patches, cell)).unflatten(-1, (patches, cell))
    cells = grid.amax(dim=(-3, -1)).flatten(-2)
    outside = (1 - inout.to(cells.dtype))[..., None]
    dist = torch.cat([cells, outside], dim=-1)
    total = dist.sum(-1, keepdim=True)
    return torch.where(total > 0, dist / torch.where(total > 0, total, 1.0), dist)


def heatmap_argmax_point(heatmaps: Tensor) -> Tensor:
    """The predicted point of every protocol: first maximum in row-major order as ``(col / W, row / H)``.

    ``heatmaps`` [..., H, W] -> [..., 2] (no +0.5 cell centre, as the published evaluation code).
    """
    height, width = heatmaps.shape[-2:]
    flat = heatmaps.flatten(-2).argmax(-1)
    dtype = heatmaps.dtype if heatmaps.is_floating_point() else torch.float32
    col = (flat % width).to(dtype) / width
    row = torch.div(flat, width, rounding_mode="floor").to(dtype) / height
    return torch.stack([col, row], dim=-1)
