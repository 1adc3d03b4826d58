"""Augmentation that moves head boxes and gaze points with the image, as each published recipe does it.

Every recipe does some of: a random crop that keeps the head box(es) and the in-frame gaze points, a
horizontal flip, a head-box jitter and a colour change — with different probabilities, ranges and order
(see :data:`PRESETS`). Random choices are drawn from a ``torch.Generator`` into an :class:`AugmentParams`
first and applied second, so the same choice can be applied to every frame of a sequence (VAT trains on
clips augmented as one) and two views can share their geometry but not their jitter/colour (GCDR's mean
teacher).

Images, boxes and points go through ``torchvision.transforms.v2.functional`` as ``tv_tensors``
(``Image``, ``BoundingBoxes``, ``KeyPoints``). Coordinates at this module's boundary are normalized, as
everywhere in gazelab. Inside, a point is continuous (``x = 0`` is the image's left edge, the references flip
it to ``W - x``) while ``KeyPoints`` flips pixel indices (``W - 1 - x``), so points enter ``KeyPoints`` shifted
by half a pixel and leave shifted back. Invalid points (``-1`` padding, out-of-frame targets) are never moved
and come back as ``-1``.

Deliberate departures from the reference code: crop edges are whole pixels rounded *outwards* (a float or
truncated crop can cut the head box or gaze point by a fraction of a pixel), and jittered boxes are always
clamped to the image (Chong's GazeFollow loader lets them leave it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

JitterMode = Literal["sides", "expand"]


@dataclass(frozen=True)
class AugmentConfig:
    """One recipe's augmentation. Each ``*_p`` is the probability of that step per sample."""

    crop_p: float = 0.5
    crop_aspect: float | None = None
    """None: free aspect (each crop edge uniform between the image edge and the kept region; Chong, Gaze-LLE).
    A number fixes width/height (SemGaze: 1.0); such a crop may stick out of the image (zero padding)."""
    crop_margin: float = 0.0
    """Fraction of the kept region's size added on each side before cropping (SemGaze: 0.05)."""
    flip_p: float = 0.5
    jitter_p: float = 0.5
    jitter_mode: JitterMode = "sides"
    """``sides``: each side moves by U(-r, r) x box width/height (Gaze-LLE, SemGaze). ``expand``: all sides
    move out by one k ~ U(0, r), the right/bottom ones by k x the already widened size (Chong's code)."""
    jitter_range: float = 0.2
    jitter_first: bool = False
    """Jitter before the crop (Chong, PDP, SemGaze: the crop keeps the jittered box) or after crop and flip
    (Gaze-LLE)."""
    color_p: float = 0.0
    brightness: tuple[float, float] = (0.5, 1.5)
    contrast: tuple[float, float] = (0.5, 1.5)
    saturation: tuple[float, float] = (0.0, 1.5)
    color_shuffle: bool = False
    """Apply brightness/contrast/saturation in a random order (SemGaze) instead of that order (Chong)."""

    def __post_init__(self) -> None:
        if not all(0.0 <= p <= 1.0 for p in (self.crop_p, self.flip_p, self.jitter_p, self.color_p)):
            raise ValueError("augmentation probabilities must be in [0, 1]")
        if self.crop_aspect is not None and self.crop_aspect <= 0:
            raise ValueError(f"crop_aspect must be positive, got {self.crop_aspect}")
        # Beyond 0.5 a "sides" jitter can turn a box inside out.
        if not 0.0 <= self.jitter_range < (0.5 if self.jitter_mode == "sides" else math.inf):
            raise ValueError(f"jitter_range {self.jitter_range} out of range for jitter_mode {self.jitter_mode!r}")


_CHONG = AugmentConfig(jitter_mode="expand", jitter_range=0.2, jitter_first=True, color_p=0.5)

PRESETS: dict[str, AugmentConfig] = {
    "none": AugmentConfig(crop_p=0.0, flip_p=0.0, jitter_p=0.0),
    "gazelle": AugmentConfig(),
    "vat": _CHONG,
    "pdp": replace(_CHONG, jitter_range=0.1),
    # GCDR's student is the VAT model with its augmentation; its two views come from GazeAugment.sample_views.
    "gcdr": _CHONG,
    "semgaze": AugmentConfig(
        crop_p=0.8,
        crop_aspect=1.0,
        crop_margin=0.05,
        jitter_p=1.0,
        jitter_range=0.1,
        jitter_first=True,
        color_p=0.8,
        color_shuffle=True,
    ),
}


def augment_config(name: str) -> AugmentConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown augmentation preset {name!r}; choose one of {', '.join(PRESETS)}") from None


@dataclass(frozen=True)
class AugmentParams:
    """The random choices for one sample (or one sequence, or one view)."""

    crop: tuple[int, int, int, int] | None
    """(top, left, height, width) in pixels of the input image, or None for no crop."""
    flip: bool
    jitter: Tensor | None
    """[P, 4] moves of x1, y1, x2, y2 as fractions of the box width/height (one row per person)."""
    jitter_first: bool
    color: tuple[tuple[str, float], ...]
    """Colour operations and factors, in the order they are applied."""


_COLOR_OPS: dict[str, Callable[[Tensor, float], Tensor]] = {
    "brightness": F.adjust_brightness,
    "contrast": F.adjust_contrast,
    "saturation": F.adjust_saturation,
}


def _uniform(generator: torch.Generator, low: float, high: float, shape: tuple[int, ...] = ()) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)


def _coin(generator: torch.Generator, p: float) -> bool:
    return bool(torch.rand((), generator=generator, dtype=torch.float64) < p)


def _jittered(boxes: Tensor, jitter: Tensor, width: int, height: int) -> Tensor:
    """Pixel boxes [..., P, 4] moved by ``jitter`` [P, 4] (fractions of their size), clamped to the image."""
    extent = boxes[..., 2:] - boxes[..., :2]
    moved = boxes + jitter * torch.cat([extent, extent], dim=-1)
    limit = torch.tensor([width, height, width, height], dtype=moved.dtype)
    return torch.minimum(moved.clamp_min(0), limit)


class GazeAugment:
    """Samples and applies one recipe's augmentation (see :class:`AugmentConfig` and :data:`PRESETS`).

    Shapes: ``heads`` [..., P, 4] normalized xyxy, ``gaze`` [..., P, A, 2] normalized with ``-1`` for
    missing points; leading dimensions (frames of a sequence) share one set of choices.
    """

    def __init__(self, config: AugmentConfig | str = "gazelle") -> None:
        self.config = augment_config(config) if isinstance(config, str) else config

    def __call__(
        self, image: Tensor, heads: Tensor, gaze: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Augment one image [3, H, W] with its people; returns the new image, heads and gaze (normalized)."""
        params = self.sample(heads, gaze, (image.shape[-2], image.shape[-1]), generator)
        return self.apply(params, image, heads, gaze)

    def sample(
        self, heads: Tensor, gaze: Tensor, canvas_size: tuple[int, int], generator: torch.Generator
    ) -> AugmentParams:
        """Draw the choices for images of ``canvas_size`` (H, W); the crop keeps every box and valid point."""
        cfg = self.config
        height, width = canvas_size
        boxes, points = _to_pixels(heads, gaze, width, height)
        jitter = self._sample_jitter(heads.shape[-2], generator) if _coin(generator, cfg.jitter_p) else None
        if jitter is not None and cfg.jitter_first:
            boxes = _jittered(boxes, jitter, width, height)
        crop, flip = self._sample_geometry(boxes, points, width, height, generator)
        return AugmentParams(crop, flip, jitter, cfg.jitter_first, self._sample_color(generator))

    def sample_views(
        self,
        heads: Tensor,
        gaze: Tensor,
        canvas_size: tuple[int, int],
        generator: torch.Generator,
        views: int = 2,
    ) -> list[AugmentParams]:
        """Choices for ``views`` views sharing crop and flip, each with its own jitter and colour (GCDR).

        The jitter comes after the shared crop, so the crop need not contain every view's jittered box.
        """
        cfg = self.config
        height, width = canvas_size
        boxes, points = _to_pixels(heads, gaze, width, height)
        crop, flip = self._sample_geometry(boxes, points, width, height, generator)
        out = []
        for _ in range(views):
            jitter = self._sample_jitter(heads.shape[-2], generator) if _coin(generator, cfg.jitter_p) else None
            out.append(AugmentParams(crop, flip, jitter, False, self._sample_color(generator)))
        return out

    def apply(self, params: AugmentParams, image: Tensor, heads: Tensor, gaze: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Apply ``params`` to one image [3, H, W] with ``heads`` [P, 4] and ``gaze`` [P, A, 2] (normalized)."""
        height, width = image.shape[-2:]
        valid = (gaze >= 0).all(-1)
        boxes_px, points_px = _to_pixels(heads, gaze, width, height)
        canvas = (height, width)
        img = tv_tensors.Image(image)
        boxes = tv_tensors.BoundingBoxes(boxes_px, format="XYXY", canvas_size=canvas)
        points = tv_tensors.KeyPoints(points_px - 0.5, canvas_size=canvas)
        if params.jitter is not None and params.jitter_first:
            boxes = tv_tensors.wrap(_jittered(boxes.as_subclass(Tensor), params.jitter, width, height), like=boxes)
        if params.crop is not None:
            img, boxes, points = (F.crop(t, *params.crop) for t in (img, boxes, points))
        if params.flip:
            img, boxes, points = (F.horizontal_flip(t) for t in (img, boxes, points))
        new_h, new_w = img.shape[-2:]
        out_boxes = boxes.as_subclass(Tensor)
        if params.jitter is not None and not params.jitter_first:
            out_boxes = _jittered(out_boxes, params.jitter, new_w, new_h)
        out = img.as_subclass(Tensor)
        for name, factor in params.color:
            out = _COLOR_OPS[name](out, factor)
        scale = torch.tensor([new_w, new_h], dtype=torch.float64)
        new_gaze = (points.as_subclass(Tensor) + 0.5) / scale
        new_gaze = torch.where(valid[..., None], new_gaze, torch.full_like(new_gaze, -1.0))
        return out, out_boxes / scale.repeat(2), new_gaze

    def _sample_jitter(self, people: int, generator: torch.Generator) -> Tensor:
        cfg = self.config
        if cfg.jitter_mode == "sides":
            return _uniform(generator, -cfg.jitter_range, cfg.jitter_range, (people, 4))
        k = _uniform(generator, 0.0, cfg.jitter_range, (people, 1))
        return torch.cat([-k, -k, k * (1 + k), k * (1 + k)], dim=-1)

    def _sample_geometry(
        self, boxes: Tensor, points: Tensor, width: int, height: int, generator: torch.Generator
    ) -> tuple[tuple[int, int, int, int] | None, bool]:
        crop = None
        if _coin(generator, self.config.crop_p) and boxes.numel() > 0:
            region = _kept_region(boxes, points)
            if self.config.crop_aspect is None:
                crop = _free_crop(region, width, height, generator)
            else:
                crop = _aspect_crop(region, width, height, self.config, generator)
        return crop, _coin(generator, self.config.flip_p)

    def _sample_color(self, generator: torch.Generator) -> tuple[tuple[str, float], ...]:
        cfg = self.config
        if not _coin(generator, cfg.color_p):
            return ()
        ranges = {"brightness": cfg.brightness, "contrast": cfg.contrast, "saturation": cfg.saturation}
        factors = {name: float(_uniform(generator, *r)) for name, r in ranges.items()}
        order = list(ranges)
        if cfg.color_shuffle:
            order = [order[i] for i in torch.randperm(len(order), generator=generator).tolist()]
        return tuple((name, factors[name]) for name in order)


def _to_pixels(heads: Tensor, gaze: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
    scale = torch.tensor([width, height], dtype=torch.float64)
    return heads.to(torch.float64) * scale.repeat(2), gaze.to(torch.float64) * scale


def _kept_region(boxes: Tensor, points: Tensor) -> tuple[float, float, float, float]:
    """The smallest pixel rectangle holding every box and every valid point (any leading dimensions)."""
    boxes = boxes.reshape(-1, 4)
    valid = (points >= 0).all(-1)
    pts = points[valid].reshape(-1, 2)
    corners = torch.cat([boxes[:, :2], boxes[:, 2:], pts])
    lo, hi = corners.amin(0), corners.amax(0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def _to_crop(left: float, top: float, right: float, bottom: float) -> tuple[int, int, int, int]:
    """Whole-pixel crop containing [left, right) x [top, bottom), at least one pixel each way."""
    x0, y0 = math.floor(left), math.floor(top)
    x1, y1 = max(math.ceil(right), x0 + 1), max(math.ceil(bottom), y0 + 1)
    return y0, x0, y1 - y0, x1 - x0


def _free_crop(
    region: tuple[float, float, float, float], width: int, height: int, generator: torch.Generator
) -> tuple[int, int, int, int]:
    """Chong's / Gaze-LLE's crop: each edge uniform between the image edge and the kept region."""
    x1, y1, x2, y2 = region
    left = float(_uniform(generator, 0.0, max(x1, 0.0)))
    top = float(_uniform(generator, 0.0, max(y1, 0.0)))
    right = float(_uniform(generator, min(x2, width), width))
    bottom = float(_uniform(generator, min(y2, height), height))
    return _to_crop(left, top, right, bottom)


def _aspect_crop(
    region: tuple[float, float, float, float],
    width: int,
    height: int,
    cfg: AugmentConfig,
    generator: torch.Generator,
) -> tuple[int, int, int, int]:
    """SemGaze's crop: fixed aspect, size uniform between the (expanded) kept region and the image."""
    aspect = float(cfg.crop_aspect)  # type: ignore[arg-type]
    x1, y1, x2, y2 = region
    mw, mh = cfg.crop_margin * (x2 - x1), cfg.crop_margin * (y2 - y1)
    x1, y1, x2, y2 = max(x1 - mw, 0.0), max(y1 - mh, 0.0), min(x2 + mw, width), min(y2 + mh, height)
    zone_w, zone_h = x2 - x1, y2 - y1
    if zone_w >= zone_h * aspect:
        crop_w = float(_uniform(generator, zone_w, width))
        crop_h = crop_w / aspect
    else:
        crop_h = float(_uniform(generator, zone_h, height))
        crop_w = crop_h * aspect
    left = _corner(generator, x1, x2, crop_w, width)
    top = _corner(generator, y1, y2, crop_h, height)
    return _to_crop(left, top, left + crop_w, top + crop_h)


def _corner(generator: torch.Generator, lo_edge: float, hi_edge: float, crop: float, size: int) -> float:
    """Uniform crop start keeping [lo_edge, hi_edge] inside and, when the crop fits, the crop in the image."""
    low = max(hi_edge - crop, 0.0)
    high = min(lo_edge, max(size - crop, 0.0))
    return float(_uniform(generator, low, high)) if low <= high else 0.0
