"""The DataModule: annotation files -> datasets -> loaders, optionally over a frozen-feature cache.

One module for every recipe: any format :func:`~gazelab.data.formats.read_annotations` reads, per-person
samples (the references' unit of training), per-image samples (an image encoded once for all its people) or
windows of one head track (temporal models), and the recipe's augmentation preset. Validation is always per
image and its batches carry ``rows`` (each person's position in the validation set) so
:class:`~gazelab.train.metric.ProtocolMetric` can score them.

Reproducibility: the shuffling order comes from a seeded sampler (seed, epoch) and each sample's augmentation
from (seed, epoch, index), so neither depends on the process's random state — a resumed run sees the same
data as an uninterrupted one, and DDP processes split one global order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Literal

import lightning.pytorch as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from rich.progress import Progress
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from gazelab.data.dataset import (
    ImageDataset,
    PersonDataset,
    Sample,
    SampleConfig,
    SequenceDataset,
    collate_people,
    collate_sequences,
)
from gazelab.data.formats import attach_gazefollow_labels, read_annotations, read_gazefollow_labels
from gazelab.data.report import Annotations
from gazelab.data.transforms import AugmentConfig
from gazelab.errors import GazelabError
from gazelab.eval.metrics import EvalTargets
from gazelab.eval.predictions import targets_from_frames
from gazelab.models.base import GazeModel
from gazelab.semisup.config import SemiSupervision, TwoStreamDataset
from gazelab.semisup.dataset import collate_two_stream
from gazelab.semisup.sampler import TwoStreamBatchSampler
from gazelab.train.cache import FeatureCache, cache_fingerprint
from gazelab.train.cached_data import CachedImageDataset, CachedPersonDataset, cacheable, collate_features
from gazelab.train.depth import DEPTH_VARIANTS, SplitDepth
from gazelab.types import Frame


class EpochSampler(DistributedSampler):
    """A seeded shuffle per epoch that also tells the dataset the epoch (its augmentation depends on it).

    Lightning calls ``set_epoch`` before each epoch's workers start, so they see the new epoch. Used with one
    process too (``num_replicas=1``): the order then never depends on the global random state.
    """

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.dataset.set_epoch(epoch)


class RowCollate:
    """Collate validation samples and add ``rows``: each person's position in the validation set."""

    def __init__(self, rows: dict[tuple[str, int], int], collate: Callable[[Sequence[Sample]], Sample]) -> None:
        self.rows = rows
        self.collate = collate

    def __call__(self, samples: Sequence[Sample]) -> Sample:
        batch = self.collate(samples)
        keys = zip(batch["image_index"].tolist(), batch["person_index"].tolist())
        batch["rows"] = torch.tensor([self.rows[(batch["paths"][i], p)] for i, p in keys], dtype=torch.long)
        return batch


def collate_sequence_people(samples: Sequence[Sample]) -> Sample:
    """Batch track windows as a person batch: the real frames of every window, window by window, with
    ``extras`` ``clip_index`` (the window) and ``frame_step`` (position in it) for temporal models.

    Each frame is its own image (``image_index`` = row), so a model that ignores the extras treats the frames
    as independent pictures.
    """
    batch = collate_sequences(samples)
    mask = batch["frame_mask"]
    clip_index, frame_step = mask.nonzero(as_tuple=True)
    images = batch["images"]
    if isinstance(images, Tensor):
        images = images[mask]
    else:  # windows of different picture sizes: one list of frames
        images = [frame for window, length in zip(images, mask.sum(1).tolist()) for frame in window[:length]]
    return {
        "images": images,
        "heads": batch["heads"][mask],
        "gaze": batch["gaze"][mask],
        "inout": batch["inout"][mask],
        "heatmaps": batch["heatmaps"][mask],
        "image_index": torch.arange(len(clip_index)),
        "sizes": batch["sizes"][clip_index],
        "paths": [path for paths in batch["paths"] for path in paths],
        "extras": {"clip_index": clip_index, "frame_step": frame_step},
    }


def validation_people(dataset: ImageDataset) -> tuple[dict[tuple[str, int], int], list[Frame]]:
    """Row of every (path, person index) the dataset yields, and the frames holding just those people."""
    rows: dict[tuple[str, int], int] = {}
    frames = []
    for f, people in dataset.index:
        frame = dataset.frames[f]
        for p in people:
            rows[(frame.path, p)] = len(rows)
        frames.append(frame.with_people([frame.people[p] for p in people]))
    return rows, frames


class GazeDataModule(L.LightningDataModule):
    """Training and validation data of a recipe.

    Args:
        train: training annotations (a file, or the dataset root for VAT/ChildPlay trees).
        val: validation annotations (same kinds); None trains without validation.
        format: annotation format (default: detected from the path).
        root: folder the image paths are relative to (default: the annotation file's folder).
        train_split: split folder of tree formats for training (VAT: ``train``).
        val_split: split folder of tree formats for validation (VAT: ``test``).
        frame_stride: keep every n-th frame of videos for training (Gaze-LLE on VAT: 6).
        image_size: resize images to this in the loader workers (batches of equal size; the model prepares
            its own input from them).
        augment: augmentation preset (``gazelle``, ``vat``, ...), an :class:`AugmentConfig`, or None.
        heatmap_rule: Gaussian placement of the targets (``gazelle`` or ``chong``).
        sampling: ``person`` (one (image, head) per sample, as the references), ``image`` (all people of an
            image in one sample: the image is encoded once) or ``sequence`` (windows of ``sequence_length``
            frames of one head track, for temporal models; video formats only; validation stays per image).
        sequence_length: frames per training window with ``sampling: sequence`` (VAT: 50 at most; PDP: 5).
        sequence_stride: frames between window starts (default: ``sequence_length``, no overlap).
        depth_dir: folder (under the dataset root) of per-image depth PNGs for PDP's depth models; each batch
            then carries ``extras["depth"]``, cropped and flipped with its image (see :mod:`gazelab.train.depth`).
        in_frame_only: train only on people looking inside the frame (Gaze-LLE on GazeFollow).
        batch_size: samples per batch and process.
        val_batch_size: images per validation batch (default: ``batch_size``).
        num_workers: loader processes.
        seed: seed of shuffling and augmentation.
        feature_cache: folder of the frozen-backbone feature cache; None computes features every step. With
            a cache, random crops and colour changes are off (see :mod:`gazelab.train.cached_data`).
        cache_dtype: ``float32`` (exact) or ``float16`` (half the disk).
        cache_batch_size: images per backbone batch while building the cache.
        semisup: two-stream semi-supervised training (GCDR): ``train`` is then the labelled part (or is split),
            unlabelled people get pseudo-labels from prior stores, and each batch holds
            ``semisup.labelled_per_batch`` + ``semisup.unlabelled_per_batch`` samples (``batch_size`` is not
            used). See :class:`~gazelab.semisup.config.SemiSupervision`.
        train_labels: SemGaze's semantic labels for GazeFollow training annotations (``gaze-labels-train.csv``),
            merged into the people as their ``label`` (see :mod:`gazelab.data.formats.gazefollow_labels`).
        val_labels: the same for the validation annotations (``gaze-labels-val.csv``).
    """

    def __init__(
        self,
        train: str,
        val: str | None = None,
        format: str | None = None,
        root: str | None = None,
        train_split: str = "train",
        val_split: str = "test",
        frame_stride: int = 1,
        image_size: int | None = 448,
        augment: str | AugmentConfig | None = "gazelle",
        heatmap_rule: Literal["gazelle", "chong"] = "gazelle",
        sampling: Literal["person", "image", "sequence"] = "person",
        in_frame_only: bool = False,
        batch_size: int = 60,
        val_batch_size: int | None = None,
        num_workers: int = 4,
        seed: int = 0,
        feature_cache: str | None = None,
        cache_dtype: Literal["float32", "float16"] = "float32",
        cache_batch_size: int = 32,
        sequence_length: int = 5,
        sequence_stride: int | None = None,
        depth_dir: str | None = None,
        semisup: SemiSupervision | None = None,
        train_labels: str | None = None,
        val_labels: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["augment", "semisup"])
        # Checkpoints keep plain values only (they load with weights_only=True): a config is kept as a dict.
        self.hparams["augment"] = asdict(augment) if isinstance(augment, AugmentConfig) else augment
        self.hparams["semisup"] = asdict(semisup) if semisup is not None else None
        self.augment = augment
        self.semisup = semisup.validate() if semisup is not None else None
        if semisup is not None and (feature_cache or depth_dir or sampling == "sequence"):
            raise GazelabError("data.semisup works without feature_cache, depth_dir and sampling: sequence")
        if frame_stride < 1:
            raise GazelabError("frame_stride must be at least 1")
        if feature_cache and depth_dir:
            raise GazelabError("data.depth_dir works without data.feature_cache (depth enters the scene trunk)")
        if sampling == "sequence" and (feature_cache or in_frame_only):
            raise GazelabError("sampling: sequence works without data.feature_cache and data.in_frame_only")
        if sequence_length < 1 or (sequence_stride is not None and sequence_stride < 1):
            raise GazelabError("sequence_length and sequence_stride must be at least 1")
        self.train_set: Dataset | None = None
        self.val_set: ImageDataset | None = None
        self.val_targets: EvalTargets | None = None
        self._val_rows: dict[tuple[str, int], int] = {}
        self._streams: tuple[int, int] | None = None
        """(labelled, unlabelled) sample counts when training on two streams."""

    def _read(self, path: str, split: str, labels: str | None = None) -> Annotations:
        hp = self.hparams
        frames = read_annotations(path, format=hp.format, root=hp.root, split=split, check_images=True)
        if labels:
            frames = attach_gazefollow_labels(frames, read_gazefollow_labels(labels))
            labelled = sum(person.label is not None for frame in frames for person in frame.people)
            rank_zero_info(f"{labels}: {labelled} of {frames.num_people} people labelled")
        rank_zero_info(f"{frames.report.source} ({frames.report.format}): {frames.report.summary()}")
        if not frames.num_people:
            raise GazelabError(f"{path}: no usable person ({frames.report.summary()})")
        return frames

    def setup(self, stage: str) -> None:
        if self.train_set is not None:
            return
        hp = self.hparams
        train = self._read(hp.train, hp.train_split, hp.get("train_labels"))
        if hp.frame_stride > 1:
            train = [f for f in train if f.frame_index is None or f.frame_index % hp.frame_stride == 0]
        unlabelled: list[Frame] = []
        if self.semisup is not None:
            train, unlabelled = self.semisup.split(train, lambda path: self._read(path, hp.train_split))
            rank_zero_info(f"semi-supervised: {len(train)} labelled and {len(unlabelled)} unlabelled images")
        val = self._read(hp.val, hp.val_split, hp.get("val_labels")) if hp.val else None
        cache = self._build_cache(train, val) if hp.feature_cache else None
        augment = cacheable(self.augment) if cache is not None else self.augment
        train_cfg = SampleConfig(image_size=hp.image_size, augment=augment, heatmap_rule=hp.heatmap_rule, seed=hp.seed)
        self.train_set = self._dataset(hp.sampling, train, train_cfg, cache)
        if self.semisup is not None and self.semisup.mode != "none":
            pseudo = self.semisup.unlabelled_dataset(unlabelled, hp.sampling, train_cfg, hp.seed)
            self._streams = (len(self.train_set), len(pseudo))
            self.train_set = TwoStreamDataset([self.train_set, pseudo])
        if val is not None:
            val_cfg = SampleConfig(image_size=hp.image_size, heatmap_rule=hp.heatmap_rule, seed=hp.seed)
            self.val_set = self._dataset("image", val, val_cfg, cache)
            self._val_rows, people = validation_people(self.val_set)
            self.val_targets = targets_from_frames(people)

    def _dataset(
        self, sampling: str, frames: Sequence[Frame], config: SampleConfig, cache: FeatureCache | None
    ) -> PersonDataset | ImageDataset:
        in_frame_only = self.hparams.in_frame_only
        hp = self.hparams

        def make(cls: type, *args, **kwargs) -> Dataset:
            if hp.depth_dir:
                return DEPTH_VARIANTS[cls](*args, depth_dir=hp.depth_dir, **kwargs)
            return cls(*args, **kwargs)

        if sampling == "sequence":
            windows = make(SequenceDataset, frames, hp.sequence_length, hp.sequence_stride, config)
            if not len(windows):
                raise GazelabError(f"{hp.train}: no head track for sampling: sequence (needs a video format)")
            return windows
        if sampling == "person":
            if cache is not None:
                return CachedPersonDataset(cache, frames, config, in_frame_only=in_frame_only)
            return make(PersonDataset, frames, config, in_frame_only=in_frame_only)
        if in_frame_only:
            frames = [f.with_people([p for p in f.people if p.inout is True]) for f in frames]
        return CachedImageDataset(cache, frames, config) if cache is not None else make(ImageDataset, frames, config)

    def _build_cache(self, train: Sequence[Frame], val: Sequence[Frame] | None) -> FeatureCache:
        """Fill the cache (each process a share of the missing views) and wait until every share is written."""
        trainer = self.trainer
        model: GazeModel = trainer.lightning_module.model
        if any(p.requires_grad for p in model.backbone.parameters()):
            raise GazelabError("data.feature_cache needs a frozen backbone (model.train_backbone: false)")
        hp = self.hparams
        cache = FeatureCache(hp.feature_cache, cache_fingerprint(model, hp.image_size, hp.cache_dtype)).reload()
        augment = cacheable(self.augment)
        mirrors = [(f, True) for f in train] if augment is not None and augment.flip_p > 0 else []
        views = [(f, False) for f in [*train, *(val or [])]] + mirrors
        todo = cache.missing(views)
        if todo:
            rank_zero_info(f"feature cache {cache.dir}: computing {len(todo)} of {len(views)} views")
            model.to(trainer.strategy.root_device)
            share = todo[trainer.global_rank :: trainer.world_size]
            with Progress(*Progress.get_default_columns(), disable=not trainer.is_global_zero) as bar:
                task = bar.add_task("feature cache", total=len(share))
                cache.build(model, share, hp.cache_batch_size, hp.num_workers, progress=lambda n: bar.advance(task, n))
        trainer.strategy.barrier("feature_cache")
        return cache.reload()

    def _loader(self, dataset: Dataset, batch_size: int, sampler: DistributedSampler | None, collate) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=collate,
            num_workers=self.hparams.num_workers,
            # Its own generator: creating a loader iterator then draws nothing from the global random state.
            generator=torch.Generator().manual_seed(self.hparams.seed),
            pin_memory=self.trainer is not None and self.trainer.strategy.root_device.type == "cuda",
        )

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        if self._streams is not None:
            return self._two_stream_loader()
        sampler = EpochSampler(
            self.train_set,
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
            shuffle=True,
            seed=self.hparams.seed,
        )
        collate = collate_features if self.hparams.feature_cache else collate_people
        if self.hparams.sampling == "sequence":
            collate = collate_sequence_people
        if self.hparams.depth_dir:
            collate = SplitDepth(collate)
        return self._loader(self.train_set, self.hparams.batch_size, sampler, collate)

    def _two_stream_loader(self) -> DataLoader:
        """Batches of labelled + pseudo-labelled samples; an epoch is one pass over the unlabelled stream."""
        trainer, semisup = self.trainer, self.semisup
        sampler = TwoStreamBatchSampler(
            *self._streams,
            semisup.labelled_per_batch,
            semisup.unlabelled_per_batch,
            seed=self.hparams.seed,
            dataset=self.train_set,
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
        )
        return DataLoader(
            self.train_set,
            batch_sampler=sampler,
            collate_fn=collate_two_stream,
            num_workers=self.hparams.num_workers,
            pin_memory=trainer is not None and trainer.strategy.root_device.type == "cuda",
        )

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        base = collate_features if self.hparams.feature_cache else collate_people
        size = self.hparams.val_batch_size or self.hparams.batch_size
        if self.hparams.depth_dir:
            base = SplitDepth(base)
        return self._loader(self.val_set, size, None, RowCollate(self._val_rows, base))
