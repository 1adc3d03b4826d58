"""The LightningModule: any gazelab model, its recipe's loss and optimiser, and protocol scores each epoch.

Families differ only behind the :class:`~gazelab.models.base.GazeModel` interface, so this module never
branches on one: it prepares the batch with the model's own ``prepare_images``/``prepare_people``, encodes
(or takes cached features), decodes, and sums the recipe's named loss terms (:mod:`gazelab.train.losses`).
Every init argument is a plain value, so checkpoints hold plain hyper-parameters and load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from torch import Tensor

from gazelab.errors import GazelabError
from gazelab.models import MODEL_ZOO, create_model
from gazelab.models.base import GazeModel, GazeOutput
from gazelab.models.checkpoints import fetch
from gazelab.train.losses import CombinedLoss
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
        losses: loss term name -> weight (default ``{heatmap_bce: 1.0}``).
        protocol: evaluation protocol scored on the validation set each epoch.
        optimizer: ``adam``, ``adamw`` or ``sgd``.
        lr: learning rate of every parameter not matched by ``lr_groups``.
        weight_decay: of the optimiser.
        lr_groups: parameter-name substring -> learning rate (Gaze-LLE VAT: ``{inout: 0.01}``).
        scheduler: None (constant) or ``cosine`` (annealed per epoch over ``trainer.max_epochs``).
        min_lr: the cosine schedule's final learning rate.
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
        self.loss = CombinedLoss(losses or DEFAULT_LOSSES)
        self.val_metric: ProtocolMetric | None = None

    def train(self, mode: bool = True) -> GazeModule:
        """A frozen backbone stays in eval mode: its features must not depend on training-mode layers."""
        super().train(mode)
        if not self.hparams.train_backbone:
            self.model.backbone.eval()
        return self

    def forward(self, batch: dict[str, Any]) -> GazeOutput:
        """A collated batch (``images`` or cached ``features``, ``heads``, ``image_index``) -> model output."""
        images = batch.get("images")
        people = self.model.prepare_people(batch["heads"], batch["image_index"], images)
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

    def on_validation_epoch_start(self) -> None:
        targets = self.trainer.datamodule.val_targets
        if self.val_metric is None:
            self.val_metric = ProtocolMetric(self.hparams.protocol, targets, self.model.has_inout).to(self.device)
        self.val_metric.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        output = self(batch)
        self.val_metric.update(batch["rows"], output.heatmap, output.inout)

    def on_validation_epoch_end(self) -> None:
        scores = self.val_metric.compute()
        # Every process holds the same scores (computed from the gathered predictions).
        self.log_dict({f"val_{name}": value.float() for name, value in scores.items()}, prog_bar=True, sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        groups = parameter_groups(self.model.named_parameters(), hp.lr, hp.lr_groups)
        optimizer = build_optimizer(hp.optimizer, groups, hp.weight_decay)
        scheduler = build_scheduler(hp.scheduler, optimizer, self.trainer.max_epochs or 0, hp.min_lr)
        return {"optimizer": optimizer} if scheduler is None else {"optimizer": optimizer, "lr_scheduler": scheduler}
