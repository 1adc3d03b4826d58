"""Datasets that read frozen-backbone features from a :class:`~gazelab.train.cache.FeatureCache` instead of images.

They are :class:`~gazelab.data.dataset.PersonDataset` / :class:`~gazelab.data.dataset.ImageDataset` with one
step replaced: a sample's people, targets and augmentation choices are made exactly as there (same seed, same
random draws, same coordinate arithmetic), and the image is swapped for the cached features of the view the
augmentation chose — the original or its mirror. Only augmentations that leave those two views are possible
(flip and head-box jitter; random crops and colour changes would need features of images never cached), so
cached and uncached training see the same samples and give the same loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import Tensor

from gazelab.data.dataset import ImageDataset, PersonDataset, Sample, collate_people
from gazelab.data.targets import annotator_heatmaps
from gazelab.data.transforms import AugmentConfig, augment_config
from gazelab.train.cache import FeatureCache
from gazelab.types import Frame


def cacheable(augment: AugmentConfig | str | None) -> AugmentConfig | None:
    """The part of a recipe's augmentation that cached features allow: crops and colour changes turned off."""
    if augment is None:
        return None
    config = augment_config(augment) if isinstance(augment, str) else augment
    return replace(config, crop_p=0.0, color_p=0.0)


def _blank(height: int, width: int) -> Tensor:
    """A stand-in image of the right size: the augmentation needs the canvas, not the pixels."""
    return torch.zeros((), dtype=torch.uint8).expand(3, height, width)


class _CachedSamples:
    """Replaces ``_FrameDataset._image_sample``: features from the cache instead of pixels."""

    cache: FeatureCache

    def _image_sample(self, index: int, frame: Frame, people: Sequence[int]) -> Sample:
        width, height = self.cache.image_size(frame)
        heads, gaze, inout = self._people(frame, people, width, height)
        flip = False
        if self.augment is not None:
            params = self.augment.sample(heads, gaze, (height, width), self._generator(index))
            if params.crop is not None or params.color:
                raise ValueError("cached features allow only flip and head jitter; use cacheable(augment)")
            _, heads, gaze = self.augment.apply(params, _blank(height, width), heads, gaze)
            flip = params.flip
        cfg = self.config
        return {
            "features": self.cache.features(frame, flip),
            "heads": heads.to(torch.float32),
            "gaze": gaze.to(torch.float32),
            "inout": inout,
            "heatmaps": annotator_heatmaps(gaze, cfg.heatmap_size, cfg.sigma, cfg.heatmap_rule),
            "person_index": torch.tensor(list(people), dtype=torch.long),
            "size": torch.tensor([width, height], dtype=torch.long),
            "path": frame.path,
        }


class CachedPersonDataset(_CachedSamples, PersonDataset):
    """:class:`PersonDataset` whose samples hold ``features`` instead of ``image``."""

    def __init__(self, cache: FeatureCache, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cache = cache


class CachedImageDataset(_CachedSamples, ImageDataset):
    """:class:`ImageDataset` whose samples hold ``features`` instead of ``image``."""

    def __init__(self, cache: FeatureCache, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cache = cache


def collate_features(samples: Sequence[Sample]) -> Sample:
    """:func:`collate_people` for cached samples: ``features`` [B, C, h, w] in place of ``images``."""
    batch = collate_people([{**sample, "image": sample["features"]} for sample in samples])
    batch["features"] = batch.pop("images")
    return batch
