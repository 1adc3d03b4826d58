"""GCDR end to end on a synthetic dataset: split -> diffusion teacher -> refined pseudo-labels -> students.

The stages the published method runs with separate commands (``gazelab split``, ``python -m gazelab.gcdr.train``,
``gazelab refine``, ``gazelab train`` with ``data.semisup``), chained in-process with small models so that
``gazelab demo`` and ``benchmarks/semisup_synthetic.py`` run them in minutes on a CPU. Every student is trained
for the same number of optimiser steps on the same labelled stream (``labelled_per_batch`` labelled people per
batch); the semi-supervised rows add ``unlabelled_per_batch`` unlabelled people to each batch, as in the usual
semi-supervised protocol. So the rows differ only in what the unlabelled people contribute:

- ``supervised``: labelled people only (the supervised-only baseline of the split);
- ``raw`` / ``argmax``: unlabelled people with the raw prior / a Gaussian at its peak as target;
- ``gcdr``: unlabelled people with diffusion-refined priors;
- ``full``: every training person with its true label (the upper bound).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gazelab.data.formats import read_annotations, write_gazefollow
from gazelab.data.splits import split_frames
from gazelab.device import lightning_devices, resolve_device
from gazelab.errors import GazelabError
from gazelab.semisup.config import SemiSupervision
from gazelab.semisup.hide import hide_labels

if TYPE_CHECKING:
    from gazelab.models.base import GazeModel

PROTOCOL = "gazefollow"
ROWS = ("supervised", "raw", "argmax", "gcdr", "full")
DEMO_DIFFUSION: dict[str, Any] = {
    "encoder": "simple", "encoder_channels": 32, "input_size": 64, "model_channels": 16,
    "channel_mult": (1, 2, 2, 2), "num_res_blocks": 1, "attention_levels": (3,), "num_heads": 2, "groups": 8,
    "encoder_direction": True, "encoder_fine": True,
}  # fmt: skip
"""A small conditional diffusion model (same structure as the published one) that trains in minutes on a CPU.

Its encoder reads the gaze direction from the face crop and gets pixel-level context (``encoder_direction``,
``encoder_fine``): without them its context says nothing about where a synthetic person looks."""


@dataclass(frozen=True)
class PipelineConfig:
    """Sizes and settings of one GCDR run on synthetic data (defaults: the demo's)."""

    fraction: float = 0.1
    seed: int = 0
    student: str = "gazelle_synth"
    student_lr: float = 2e-3
    student_scheduler: str | None = None
    """``cosine``: the students' rate anneals to 0 over ``student_steps``; None keeps it constant."""
    student_steps: int = 300
    student_losses: dict[str, float] = field(default_factory=lambda: {"heatmap_bce": 1.0, "angular": 0.2})
    """``angular`` trains gazelle_synth's gaze direction; it only sees labelled people (pseudo-labels have no point)."""
    labelled_per_batch: int = 16
    unlabelled_per_batch: int = 16
    """Per batch: every row gets ``labelled_per_batch`` labelled people (``full``: people with their true label);
    the pseudo-label rows also get ``unlabelled_per_batch`` unlabelled ones. GCDR's 20 + 60 shares one batch size
    between the streams, which is fair only when training runs to convergence (25 epochs over the unlabelled
    part); at a few hundred steps it would show the semi-supervised students a quarter of the labelled samples
    the supervised-only one sees. Measured at 2 % labels, 600 steps: the GCDR student reaches avg L2 0.387 with
    4 + 12, 0.221 with 8 + 8 and 0.191 with 16 + 16."""
    diffusion: dict[str, Any] = field(default_factory=lambda: dict(DEMO_DIFFUSION))
    guide_folds: int = 2
    """Cross-fitting folds of the teacher's guide model, when ``diffusion`` names one (``encoder_guide``)."""
    diffusion_epochs: int = 20
    diffusion_distractors: float = 0.0
    """Share of the teacher's training maps given a second, random blob before noising (``gazelab.gcdr.corrupt``)."""
    diffusion_lr: float = 1e-3
    diffusion_batch: int = 32
    t_start: int = 250
    steps: int = 2
    refine_samples: int = 1
    """Refinement draws averaged per person (:attr:`gazelab.gcdr.refine.RefineConfig.samples`): one commits each
    pseudo-label to one blob; several keep the teacher's doubt between blobs in the label."""
    image_size: int = 224
    device: str = "auto"
    """Where every stage runs (:func:`gazelab.device.resolve_device`): ``auto`` takes the GPU when there is one.
    The rows' numbers depend on it (float rounding differs between devices and the students amplify it), so
    compare rows made on one device."""
    workers: int = 0
    """Data-loading processes of every training stage: 0 on a CPU, where loading shares the cores with training;
    a few on a GPU, where one process cannot decode images as fast as the GPU trains on them."""


@dataclass
class SplitFiles:
    root: Path
    labelled: Path
    unlabelled: Path
    test: Path
    priors: Path


@dataclass
class Guides:
    """Weight files of the teacher's guide: the model of all labelled people and one per cross-fitting fold."""

    full: Path
    folds: list[Path]


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's INFO lines held back while a stage builds and fits its trainer: the devices it found, an advert
    for its cloud logger, why fit stopped and the data module's row counts, four or five lines per stage, would
    bury the report of ``gazelab demo`` and the benchmark. Warnings and errors still show."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _fit(trainer, module, data) -> None:
    """``trainer.fit`` without Lightning's hints that do not apply to these small in-process runs."""
    with warnings.catch_warnings(), _quiet_lightning():
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")  # a frozen guide (train_guides)
        trainer.fit(module, datamodule=data)


def split_dataset(data: Path, out: Path, config: PipelineConfig, priors: Path | None = None) -> SplitFiles:
    """Seeded per-image split of the synthetic train file into ``out/labelled.txt`` and ``out/unlabelled.txt``."""
    train = read_annotations(data / "train_annotations_release.txt")
    labelled, unlabelled = split_frames(train, config.fraction, config.seed)
    write_gazefollow(labelled, out / "labelled.txt", split="train")
    write_gazefollow(unlabelled, out / "unlabelled.txt", split="train")
    return SplitFiles(data, out / "labelled.txt", out / "unlabelled.txt", data / "test_annotations_release.txt",
                      priors or data / "priors")  # fmt: skip


def _trainer(out: Path, config: PipelineConfig, **kwargs: Any):
    import lightning.pytorch as L

    options = dict(**lightning_devices(resolve_device(config.device)), default_root_dir=out, logger=False,
                   enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                   num_sanity_val_steps=0)  # fmt: skip
    options.update(kwargs)
    with _quiet_lightning():
        return L.Trainer(**options)


def guided(config: PipelineConfig) -> bool:
    """Whether the run's teacher is conditioned on a guide model (then :func:`train_guides` comes first)."""
    return config.diffusion.get("encoder_guide") is not None


def train_guides(files: SplitFiles, out: Path, config: PipelineConfig, supervised: GazeModel | None = None) -> Guides:
    """The teacher's guide models (:mod:`gazelab.gcdr.guide`): the supervised-only student (``supervised`` when
    it is already trained) and one student per fold on the labelled images outside that fold, same recipe."""
    from gazelab.gcdr.guide import outside_fold
    from gazelab.train.export import official_state_dict, save_weights

    def save(model, path: Path) -> Path:
        return save_weights(official_state_dict(model, include_backbone=True), path)

    out.mkdir(parents=True, exist_ok=True)
    supervised = supervised or train_student(files, "supervised", {}, out / "full", config)
    folds = []
    labelled = read_annotations(files.labelled)
    for fold in range(config.guide_folds):
        train, frames = out / f"fold{fold}.txt", outside_fold(labelled, fold, config.guide_folds)
        if not frames:
            raise GazelabError(f"{files.labelled}: every labelled image falls in guide fold {fold}, so its model "
                               "has nothing to train on — label more images or lower guide_folds")  # fmt: skip
        write_gazefollow(frames, train, split="train")
        model = train_student(replace(files, labelled=train), "supervised", {}, out / f"fold{fold}", config)
        folds.append(save(model, out / f"fold{fold}.pt"))
    return Guides(save(supervised, out / "full.pt"), folds)


def train_diffusion(files: SplitFiles, out: Path, config: PipelineConfig, guides: Guides | None = None):
    """GCDR's heatmap diffusion model, supervised on the labelled part; returns it (eval mode), saves a checkpoint.

    ``guides``: the guide models' weights, for a teacher with ``encoder_guide`` (:func:`train_guides`)."""
    import lightning.pytorch as L

    from gazelab.gcdr.lightning import DiffusionModule
    from gazelab.train.data import GazeDataModule

    if (guides is None) == guided(config):
        raise ValueError("a teacher with encoder_guide needs its guides (train_guides), and only it")
    L.seed_everything(config.seed, verbose=False)
    extra = {} if guides is None else {"guide_weights": str(guides.full), "guide_folds": [str(f) for f in guides.folds]}
    module = DiffusionModule(config=config.diffusion, lr=config.diffusion_lr, protocol=PROTOCOL,
                             distractors=config.diffusion_distractors, **extra)  # fmt: skip
    data = GazeDataModule(train=str(files.labelled), root=str(files.root), image_size=config.image_size,
                          augment="gcdr", heatmap_rule="chong", sampling="person", in_frame_only=True,
                          batch_size=config.diffusion_batch, num_workers=config.workers, seed=config.seed)  # fmt: skip
    trainer = _trainer(out, config, max_epochs=config.diffusion_epochs, limit_val_batches=0)
    _fit(trainer, module, data)
    trainer.save_checkpoint(out / "diffusion.ckpt", weights_only=True)
    return module.model.eval()


def refine_priors(files: SplitFiles, model, out: Path, config: PipelineConfig, progress: Callable | None = None):
    """Refined pseudo-labels for every unlabelled person, into the prior store ``out`` (resumable)."""
    from gazelab.gcdr.pseudo import PseudoLabeller
    from gazelab.gcdr.refine import RefineConfig, Refiner
    from gazelab.priors.jobs import pending, run_job
    from gazelab.priors.store import PriorStore

    refine = RefineConfig(t_start=config.t_start, steps=config.steps, samples=config.refine_samples)
    priors = PriorStore(files.priors)
    store = PriorStore(out, create=True, meta=PseudoLabeller.meta(refine, config.seed, "in-memory", priors))
    frames = hide_labels(read_annotations(files.unlabelled, root=files.root))
    labeller = PseudoLabeller(Refiner(model.to(resolve_device(config.device)), refine), priors, config.seed)
    run_job(pending(frames, store), labeller, store, batch_size=64, flush_every=4096, progress=progress)
    return store


def student_data(files: SplitFiles, row: str, stores: dict[str, Path], config: PipelineConfig):
    """The training data of one student row (see :attr:`PipelineConfig.labelled_per_batch` for the batches)."""
    from gazelab.train.data import GazeDataModule

    semisup = None
    train = files.labelled
    if row in ("raw", "argmax", "gcdr"):
        semisup = SemiSupervision(
            unlabelled=str(files.unlabelled), pseudo_labels=[str(stores["gcdr" if row == "gcdr" else "prior"])],
            mode="refined" if row == "gcdr" else row, labelled_per_batch=config.labelled_per_batch,
            unlabelled_per_batch=config.unlabelled_per_batch,
        )  # fmt: skip
    elif row == "full":
        train = files.root / "train_annotations_release.txt"
    return GazeDataModule(train=str(train), root=str(files.root), image_size=config.image_size, augment="gazelle",
                          heatmap_rule="gazelle", sampling="person", batch_size=config.labelled_per_batch,
                          num_workers=config.workers, seed=config.seed, semisup=semisup)  # fmt: skip


def train_student(files: SplitFiles, row: str, stores: dict[str, Path], out: Path, config: PipelineConfig):
    """One student (see the module docstring for the rows); returns the trained model in eval mode."""
    import lightning.pytorch as L

    from gazelab.train.module import GazeModule

    L.seed_everything(config.seed, verbose=False)
    module = GazeModule(name=config.student, train_backbone=True, losses=config.student_losses, protocol=PROTOCOL,
                        optimizer="adamw", lr=config.student_lr, weight_decay=0.01,
                        scheduler=config.student_scheduler)  # fmt: skip
    trainer = _trainer(out, config, max_steps=config.student_steps, max_epochs=-1, limit_val_batches=0)
    _fit(trainer, module, student_data(files, row, stores, config))
    return module.model.eval()


def evaluate(model, files: SplitFiles, device: str = "auto") -> dict[str, float]:
    """AUC / avg L2 / min L2 of ``model`` on the synthetic test split (protocol ``gazefollow``), its heatmaps
    predicted on ``device`` (see :attr:`PipelineConfig.device`)."""
    from gazelab.eval.evaluate import predict_frames
    from gazelab.eval.metrics import get_protocol
    from gazelab.eval.predictions import targets_from_frames

    test = read_annotations(files.test, root=files.root)
    heatmaps = predict_frames(model, test, device=resolve_device(device)).heatmaps
    return get_protocol(PROTOCOL).evaluate(targets_from_frames(test), heatmaps=heatmaps).summary


def evaluate_store(store_path: Path, files: SplitFiles) -> dict[str, float]:
    """How good a pseudo-label store is against the hidden truth of the unlabelled people (for the report only:
    nothing in training reads this)."""
    import torch

    from gazelab.eval.metrics import get_protocol
    from gazelab.eval.predictions import targets_from_frames
    from gazelab.priors.store import PriorStore, person_key

    store = PriorStore(store_path)
    kept, maps = [], []
    for frame in read_annotations(files.unlabelled, root=files.root):
        inside = [i for i, person in enumerate(frame.people) if person.inout]
        for i in inside:
            record = store.get(*person_key(frame, i))
            maps.append(torch.zeros(64, 64) if record is None else torch.from_numpy(record.heatmap.astype("float32")))
        if inside:
            kept.append(frame.with_people([frame.people[i] for i in inside]))
    return get_protocol("gazefollow-64").evaluate(targets_from_frames(kept), heatmaps=torch.stack(maps)).summary
