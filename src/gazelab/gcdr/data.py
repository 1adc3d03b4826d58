"""Data of the diffusion model's mean-teacher stage: two streams (labelled, unlabelled), two views per person.

Each person is drawn twice with the same crop and flip but its own head jitter and colour change
(:meth:`~gazelab.data.transforms.GazeAugment.sample_views`): the student sees view 1, the teacher view 2. Batches
are ``{"labelled": {"view1", "view2"}, "unlabelled": {"view1", "view2"}}`` of :func:`collate_people` batches
(GCDR: 10 labelled + 30 unlabelled); an epoch is one pass over the unlabelled people, the labelled ones cycling.

Unlabelled frames are stripped of their annotations before anything else sees them (the split files still hold
them): their crops keep the head only, their target maps are empty, and their in-frame flag in the batch,
``prior_inframe``, is the prior store's estimate — a valid, non-empty prior — or "in frame" without a store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import CombinedLoader

from gazelab.data.dataset import PersonDataset, Sample, SampleConfig, collate_people
from gazelab.errors import GazelabError
from gazelab.priors.store import PriorStore, person_key
from gazelab.train.data import EpochSampler, GazeDataModule
from gazelab.types import Frame


def strip_labels(frames: Sequence[Frame]) -> list[Frame]:
    """The frames with every person's gaze points, in/out flag and target labels removed."""
    people = [
        [replace(p, gaze=(), inout=None, label=None, labels=(), target_box=None) for p in f.people] for f in frames
    ]
    return [frame.with_people(group) for frame, group in zip(frames, people)]


class TwoViewDataset(PersonDataset):
    """Per-person samples as ``{"view1": sample, "view2": sample}`` (shared crop/flip, own jitter/colour).

    With ``priors`` each sample also carries ``prior_inframe`` [1] (bool): the store has a valid, non-zero map.
    """

    def __init__(self, frames: Sequence[Frame], config: SampleConfig, priors: PriorStore | None = None) -> None:
        super().__init__(frames, config)
        if self.augment is None:
            raise GazelabError("two-view samples need an augmentation preset (GCDR: gcdr)")
        self.priors = priors

    def _inframe(self, frame: Frame, person: int) -> bool:
        if self.priors is None:
            return True
        record = self.priors.get(*person_key(frame, person))
        return record is not None and record.valid and float(record.heatmap.max()) > 0

    def __getitem__(self, index: int) -> dict[str, Sample]:
        f, p = self.index[index]
        frame = self.frames[f]
        image = self._load(frame)
        height, width = image.shape[-2:]
        heads, gaze, inout = self._people(frame, [p], width, height)
        views = self.augment.sample_views(heads, gaze, (height, width), self._generator(index))
        inframe = torch.tensor([self._inframe(frame, p)])
        out = {}
        for name, params in zip(("view1", "view2"), views):
            picture, view_heads, view_gaze = self.augment.apply(params, image, heads, gaze)
            picture, heatmaps = self._finish(picture, view_gaze)
            out[name] = {
                "image": picture,
                "heads": view_heads.to(torch.float32),
                "gaze": view_gaze.to(torch.float32),
                "inout": inout,
                "heatmaps": heatmaps,
                "person_index": torch.tensor([p]),
                "size": torch.tensor([width, height]),
                "path": frame.path,
                "prior_inframe": inframe,
            }
        return out


def collate_views(samples: Sequence[dict[str, Sample]]) -> dict[str, Any]:
    """``{"view1": batch, "view2": batch}``, each a :func:`collate_people` batch plus ``prior_inframe`` [N]."""
    out = {}
    for view in ("view1", "view2"):
        items = [s[view] for s in samples]
        batch = collate_people(items)
        batch["prior_inframe"] = torch.cat([s["prior_inframe"] for s in items])
        out[view] = batch
    return out


class MeanTeacherData(GazeDataModule):
    """:class:`GazeDataModule` for the mean-teacher stage: ``train`` is the labelled file, ``unlabelled`` the rest.

    Args (beyond :class:`GazeDataModule`'s): unlabelled: the unlabelled annotations (labels in it are dropped on
    reading); priors: prior store whose maps tell which unlabelled people look inside the frame;
    unlabelled_batch_size: unlabelled people per batch (GCDR: 30; ``batch_size`` is the labelled share, 10).
    """

    def __init__(
        self,
        train: str,
        unlabelled: str,
        priors: str | None = None,
        unlabelled_batch_size: int = 30,
        val: str | None = None,
        batch_size: int = 10,
        image_size: int = 224,
        augment: str = "gcdr",
        heatmap_rule: str = "chong",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            train,
            val,
            image_size=image_size,
            augment=augment,
            heatmap_rule=heatmap_rule,
            batch_size=batch_size,
            **kwargs,
        )
        self.unlabelled_path = unlabelled
        self.priors_path = priors
        self.unlabelled_batch_size = unlabelled_batch_size
        self.unlabelled_set: TwoViewDataset | None = None

    def _dataset(self, sampling: str, frames: Sequence[Frame], config: SampleConfig, cache: Any) -> Any:
        if sampling == "person":  # the training stream; validation stays per image
            return TwoViewDataset(frames, config)
        return super()._dataset(sampling, frames, config, cache)

    def setup(self, stage: str) -> None:
        if self.unlabelled_set is not None:
            return
        super().setup(stage)
        hp = self.hparams
        frames = strip_labels(self._read(self.unlabelled_path, hp.train_split))
        priors = PriorStore(Path(self.priors_path)) if self.priors_path else None
        config = replace(self.train_set.config)
        self.unlabelled_set = TwoViewDataset(frames, config, priors)

    def _stream(self, dataset: TwoViewDataset, batch_size: int) -> Any:
        trainer = self.trainer
        sampler = EpochSampler(
            dataset,
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
            shuffle=True,
            seed=self.hparams.seed,
        )
        return self._loader(dataset, batch_size, sampler, collate_views)

    def train_dataloader(self) -> CombinedLoader:
        streams = {
            "labelled": self._stream(self.train_set, self.hparams.batch_size),
            "unlabelled": self._stream(self.unlabelled_set, self.unlabelled_batch_size),
        }
        return CombinedLoader(streams, mode="max_size_cycle")
