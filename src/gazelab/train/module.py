"""The LightningModule: any gazelab model, its recipe's loss and optimiser, and protocol scores each epoch.

Families differ only behind the :class:`~gazelab.models.base.GazeModel` interface, so this module never
branches on one: it prepares the batch with the model's own ``prepare_images``/``prepare_people``, encodes
(or takes cached features), decodes, and sums the recipe's named loss terms (:mod:`gazelab.train.losses`).
Every init argument is a plain value, so checkpoints hold plain hyper-parameters and load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from gazelab.errors import GazelabError
from gazelab.eval.semantic import LabelTargets, SemanticMetric
from gazelab.models import MODEL_ZOO, create_model
from gazelab.models.base import GazeModel, GazeOutput
from gazelab.models.checkpoints import fetch
from gazelab.train.data import validation_people
from gazelab.train.losses import CombinedLoss
from gazelab.train.losses_semgaze import semantic_targets
from gazelab.train.metric import ProtocolMetric
from gazelab.train.optim import build_optimizer, build_scheduler, parameter_groups

DEFAULT_LOSSES = {"heatmap_bce": 1.0}


def published_weights(pretrained: bool | str) -> bool | str | Path:
    """A zoo name stands for that model's published weight file (downloaded once into the cache)."""
    if isinstance(pretrained, str) and pretrained in MODEL_ZOO:
        spec = MODEL_ZOO[pretrained]
        if spec.weights is None:
            raise GazelabError(f"pretrained: {pretrained} has no published weights")
        return fetch(spec.weights)
    return pretrained


class GazeModule(L.LightningModule):
    """Trains one zoo model.

    Args:
        name: zoo name of the model (``gazelab models list``).
        pretrained: False (random decoder), True (the model's published weights), a weight file, or another
            zoo name whose published weights to start from (VAT fine-tuning starts from the GazeFollow model).
        backbone_weights: as :func:`~gazelab.models.create_model` (None: load the published backbone when the
            weights lack one; True: load it anyway, e.g. for a new decoder on pretrained DINOv2).
        allow_missing_inout: start an in/out model from weights without the in/out head (VAT fine-tuning).
        train_backbone: train the image encoder too (False keeps it frozen, in eval mode; then its features
            can be cached).
        trainable: if given, only parameters whose name contains one of these substrings train; the rest are
            frozen (VAT's video fine-tuning trains the ConvLSTM, deconvolutions, ``conv4`` and ``fc_inout``).
        freeze_bn: keep every BatchNorm in eval mode (running statistics fixed), as VAT's video fine-tuning.
        losses: loss term name -> weight (default ``{heatmap_bce: 1.0}``).
        protocol: evaluation protocol scored on the validation set each epoch.
        optimizer: ``adam``, ``adamw`` or ``sgd``.
        lr: learning rate of every parameter not matched by ``lr_groups``.
        weight_decay: of the optimiser.
        lr_groups: parameter-name substring -> learning rate (Gaze-LLE VAT: ``{inout: 0.01}``).
        scheduler: None (constant), ``cosine`` (annealed per epoch over ``trainer.max_epochs``; per step over
            ``trainer.max_steps`` when the run has no ``max_epochs``) or ``multistep``.
        min_lr: the cosine schedule's final learning rate.
        warmup_epochs: linear warm-up from 0 to the peak rates over this many epochs (fractions allowed),
            stepped per optimiser step; then ``cosine`` anneals per step over the remaining steps (SemGaze: 4 of
            20 epochs) and ``None`` stays constant. 0 = no warm-up. Steps are counted from the trainer's
            ``estimated_stepping_batches`` (limits, accumulation and devices included).
        milestones: epochs at which ``multistep`` multiplies the rates by ``gamma`` (PDP: [15, 22, 30]).
        gamma: the ``multistep`` factor (PDP: 0.2).
        vocabulary: label vocabulary of a semantic model (a ``vocab2id.json``, a file of names, or ``a,b,c``):
            batches then get label ids, text embeddings and the learnable temperature of ``info_nce``, and
            validation also logs the semantic scores (``val_acc1``, ``val_acc3``; ``val_multi_acc1`` when people
            have several acceptable labels, ``val_gaze_acc`` when they have object boxes).
        text_model: what embeds the vocabulary (a CLIP model name or folder, or ``random``).

    A batch may carry ``extras``: per-person tensors handed to the model as ``people.extras`` (sequence
    positions ``clip_index``/``frame_step`` for temporal models, ``depth`` for PDP, ``gradcam`` for VAT-GC).
    """

    def __init__(
        self,
        name: str = "gazelle_dinov2_vitb14",
        pretrained: bool | str = False,
        backbone_weights: bool | str | None = None,
        allow_missing_inout: bool = False,
        train_backbone: bool = False,
        losses: dict[str, float] | None = None,
        protocol: str = "gazefollow",
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        lr_groups: dict[str, float] | None = None,
        scheduler: str | None = None,
        min_lr: float = 0.0,
        trainable: list[str] | None = None,
        freeze_bn: bool = False,
        milestones: list[int] | None = None,
        gamma: float = 0.1,
        vocabulary: str | None = None,
        text_model: str = "openai/clip-vit-base-patch16",
        warmup_epochs: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model: GazeModel = create_model(
            name,
            pretrained=published_weights(pretrained),
            backbone_weights=backbone_weights,
            allow_missing_inout=allow_missing_inout,
        )
        self.model.backbone.requires_grad_(train_backbone)
        if trainable:
            _train_only(self.model, trainable)
        self.loss = CombinedLoss(losses or DEFAULT_LOSSES)
        self.semantic = semantic_targets(vocabulary, text_model) if vocabulary else None
        self.val_metric: ProtocolMetric | None = None
        self.val_semantic: SemanticMetric | None = None

    def train(self, mode: bool = True) -> GazeModule:
        """A frozen backbone stays in eval mode: its features must not depend on training-mode layers."""
        super().train(mode)
        if not self.hparams.train_backbone:
            self.model.backbone.eval()
        if self.hparams.get("freeze_bn"):
            for module in self.model.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def forward(self, batch: dict[str, Any]) -> GazeOutput:
        """A collated batch (``images`` or cached ``features``, ``heads``, ``image_index``) -> model output."""
        images = batch.get("images")
        people = self.model.prepare_people(batch["heads"], batch["image_index"], images)
        people.extras.update({name: value.to(self.device) for name, value in batch.get("extras", {}).items()})
        if self.semantic is not None and "labels" in batch:
            self.semantic.add_to(batch)
        features = batch.get("features")
        if features is None:
            with torch.set_grad_enabled(self.hparams.train_backbone and torch.is_grad_enabled()):
                features = self.model.encode(self.model.prepare_images(images))
        return self.model.decode(features, people)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        losses = self.loss(self(batch), batch)
        size = len(batch["heads"])
        log = {"on_epoch": True, "batch_size": size, "sync_dist": True}  # epoch means over every process
        self.log("train_loss", losses["total"], prog_bar=True, on_step=True, **log)
        if len(losses) > 2:
            self.log_dict({f"train_{k}": v for k, v in losses.items() if k != "total"}, on_step=False, **log)
        return losses["total"]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """SemGaze caps the contrastive temperature's logit scale at log(100) after every optimiser step."""
        if self.semantic is not None:
            self.semantic.clamp_()

    def on_validation_epoch_start(self) -> None:
        targets = self.trainer.datamodule.val_targets
        if self.val_metric is None:
            self.val_metric = ProtocolMetric(self.hparams.protocol, targets, self.model.has_inout).to(self.device)
        self.val_metric.reset()
        if self.semantic is not None:
            if self.val_semantic is None:
                self.val_semantic = self._semantic_metric()
            self.val_semantic.reset()

    def _semantic_metric(self) -> SemanticMetric:
        """Label targets of the validation people, in the order of the ``rows`` their batches carry."""
        _, frames = validation_people(self.trainer.datamodule.val_set)
        people = [person for frame in frames for person in frame.people]
        vocabulary = self.semantic.vocabulary
        return SemanticMetric(LabelTargets.from_people(people, vocabulary.ids), vocabulary.embeddings).to(self.device)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        output = self(batch)
        self.val_metric.update(batch["rows"], output.heatmap, output.inout)
        if self.val_semantic is not None:
            if output.label_embedding is None:
                raise GazelabError(f"model.vocabulary is set but {self.hparams.name} predicts no label embeddings")
            self.val_semantic.update(batch["rows"], output.label_embedding, output.heatmap)

    def on_validation_epoch_end(self) -> None:
        scores = self.val_metric.compute()
        if self.val_semantic is not None:
            scores.update(self.val_semantic.compute())
        # Every process holds the same scores (computed from the gathered predictions).
        self.log_dict({f"val_{name}": value.float() for name, value in scores.items()}, prog_bar=True, sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        named = list(self.model.named_parameters())
        if self.semantic is not None:  # the contrastive temperature trains with the model
            named += list(self.semantic.named_parameters(prefix="semantic"))
        groups = parameter_groups(named, hp.lr, hp.lr_groups)
        optimizer = build_optimizer(hp.optimizer, groups, hp.weight_decay)
        epochs = self.trainer.max_epochs or 0
        if hp.get("warmup_epochs"):
            scheduler = self._warmup_scheduler(optimizer)
        elif hp.scheduler == "cosine" and epochs < 1 and self.trainer.max_steps > 0:
            # A run bounded by steps alone (the GCDR pipeline's students) anneals per step over them.
            schedule = warmup_schedule(optimizer, 0, self.trainer.max_steps, hp.min_lr, cosine=True)
            scheduler = {"scheduler": schedule, "interval": "step"}
        else:
            scheduler = build_scheduler(
                hp.scheduler, optimizer, epochs, hp.min_lr, hp.get("milestones") or (), hp.get("gamma", 0.1)
            )
        return {"optimizer": optimizer} if scheduler is None else {"optimizer": optimizer, "lr_scheduler": scheduler}

    def _warmup_scheduler(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The per-step schedule with linear warm-up (``cosine`` or constant after it), in optimiser steps."""
        hp, trainer = self.hparams, self.trainer
        if hp.warmup_epochs < 0 or not math.isfinite(hp.warmup_epochs):
            raise GazelabError(f"model.warmup_epochs must be 0 or more, got {hp.warmup_epochs}")
        if hp.scheduler not in (None, "cosine"):
            raise GazelabError(f"model.warmup_epochs works with scheduler cosine or null, not {hp.scheduler}")
        total = trainer.estimated_stepping_batches
        if not trainer.max_epochs or trainer.max_epochs < 1 or not math.isfinite(total):
            raise GazelabError("model.warmup_epochs needs trainer.max_epochs (warm-up is counted in epochs)")
        warmup = max(1, round(hp.warmup_epochs * total / trainer.max_epochs))
        schedule = warmup_schedule(optimizer, warmup, int(total), hp.min_lr, cosine=hp.scheduler == "cosine")
        return {"scheduler": schedule, "interval": "step"}


def warmup_schedule(
    optimizer: torch.optim.Optimizer, warmup: int, total: int, min_lr: float, cosine: bool
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step factors of each group's peak rate: ``step / warmup`` during the first ``warmup`` steps, then
    1 (constant) or a cosine from 1 down to ``min_lr`` at step ``total`` (the shape of SemGaze's
    ``get_cosine_schedule_with_warmup``, with a floor). Each group keeps its own peak (``lr_groups``)."""

    def factor(peak: float) -> Callable[[int], float]:
        floor = min(min_lr / peak, 1.0) if peak > 0 else 0.0

        def at(step: int) -> float:
            if step < warmup:
                return step / warmup
            if not cosine:
                return 1.0
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        return at

    return torch.optim.lr_scheduler.LambdaLR(optimizer, [factor(group["lr"]) for group in optimizer.param_groups])


def _train_only(model: torch.nn.Module, patterns: list[str]) -> None:
    """Freeze every parameter whose name contains none of ``patterns`` (a pattern matching nothing is a typo)."""
    matched = {pattern: False for pattern in patterns}
    for name, param in model.named_parameters():
        hits = [pattern for pattern in patterns if pattern in name]
        param.requires_grad_(bool(hits))
        matched.update(dict.fromkeys(hits, True))
    unused = [pattern for pattern, hit in matched.items() if not hit]
    if unused:
        raise GazelabError(f"trainable {unused} match no parameter name of {type(model).__name__}")
