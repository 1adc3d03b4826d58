"""Datasets of unlabelled people whose targets are pseudo-labels, and the two-stream collate.

They build on the labelled datasets (same image loading, augmentation recipe, resize and sample layout) and
differ in one step: the target map is the person's pseudo-label moved with the augmentation
(:func:`~gazelab.semisup.maps.augment_maps`) instead of a Gaussian at an annotated point. The frames given
here must already have passed :func:`~gazelab.semisup.hide.hide_labels`; the crop keeps each pseudo-label's
peak in view the way labelled crops keep the gaze point.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gazelab.data.dataset import ImageDataset, PersonDataset, Sample, SampleConfig, collate_people
from gazelab.priors.store import person_key
from gazelab.semisup.maps import augment_maps, map_peaks
from gazelab.semisup.sources import PseudoLabelSource
from gazelab.types import Frame


class _PseudoLabelled:
    """Replaces the target step of a frame dataset (mixed into :class:`PersonDataset` / :class:`ImageDataset`)."""

    source: PseudoLabelSource

    def _image_sample(self, index: int, frame: Frame, people: Sequence[int]) -> Sample:
        cfg = self.config
        image = self._load(frame)
        height, width = image.shape[-2:]
        heads, _, _ = self._people(frame, people, width, height)
        answers = [self.source(*person_key(frame, p), self.epoch) for p in people]
        size = cfg.heatmap_size
        maps = torch.stack(
            [a.heatmap.float() if a is not None else torch.zeros(size, size) for a in answers]
        ) if answers else torch.zeros(0, size, size)  # fmt: skip
        inout = torch.tensor([a.inout if a is not None else -1.0 for a in answers], dtype=torch.float32)
        peaks = torch.where(
            (inout == 1)[:, None], map_peaks(maps), torch.full((len(people), 2), -1.0, dtype=torch.float64)
        )
        keep = peaks[:, None]  # [P, 1, 2]: what the crop must keep, like a labelled gaze point
        params = None
        if self.augment is not None:
            params = self.augment.sample(heads, keep, (height, width), self._generator(index))
            image, heads, keep = self.augment.apply(params, image, heads, keep)
        image, _ = self._finish(image, torch.full_like(keep, -1.0))
        return {
            "image": image,
            "heads": heads.to(torch.float32),
            "gaze": torch.full((len(people), 1, 2), -1.0),
            "inout": inout,
            "heatmaps": augment_maps(maps, params, (height, width), size).clamp(0, 1),
            "person_index": torch.tensor(list(people), dtype=torch.long),
            "size": torch.tensor([width, height], dtype=torch.long),
            "path": frame.path,
            "labels": [None] * len(people),
            "labelled": torch.zeros(len(people)),
        }


class PseudoLabelledPersonDataset(_PseudoLabelled, PersonDataset):
    """One unlabelled person per sample, target from ``source``."""

    def __init__(self, frames: Sequence[Frame], source: PseudoLabelSource, config: SampleConfig | None = None) -> None:
        super().__init__(frames, config)
        self.source = source


class PseudoLabelledImageDataset(_PseudoLabelled, ImageDataset):
    """One unlabelled image (all its people) per sample, targets from ``source``."""

    def __init__(self, frames: Sequence[Frame], source: PseudoLabelSource, config: SampleConfig | None = None) -> None:
        super().__init__(frames, config)
        self.source = source


def collate_two_stream(samples: Sequence[Sample]) -> Sample:
    """:func:`collate_people` plus ``labelled`` [N] (1 for people of labelled samples, 0 for pseudo-labelled)."""
    batch = collate_people(samples)
    batch["labelled"] = torch.cat([s.get("labelled", torch.ones(len(s["heads"]))) for s in samples])
    return batch
