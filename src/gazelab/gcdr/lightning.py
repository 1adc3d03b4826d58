"""Training GCDR's heatmap diffusion model: supervised on the labelled part, then (optionally) as a mean teacher.

Supervised (Miao et al. 2024): for each labelled person draw t ~ U{1..T}, noise the target Gaussian to index
t - 1, predict x0 from (x_t, t, person); the loss is the per-person mean over 64x64 of (x0_pred - GT)^2, averaged
over in-frame people, times 10000. Adam lr 5e-5, batch 48, 150 epochs (5%, 10% labels) / 100 (20%).

Mean teacher (optional stage): each person comes in two views sharing crop/flip with their own jitter/colour
(:mod:`gazelab.gcdr.data`). The student sees view 1 — labelled people at a random t (supervised loss as above),
unlabelled ones as pure noise at t = T — and the teacher, an exponential moving average of the student's
parameters (decay ``min(1 - 1/(step // 15 + 1), 0.99)``; BatchNorm statistics copied), samples view 2 with 10
DDIM steps from noise. Consistency = KL(softmax(teacher) || softmax(student)) over the 4096 pixels, summed per
person, averaged over in-frame people, weighted by ``4000 * exp(-5 (1 - min(epoch, 5) / 5)^2)``.
In-frame for unlabelled people is the *prior's* estimate (``prior_inframe`` in the batch, all in frame when no
prior is given) — their annotations are never read: :func:`unlabelled_inputs` is the only door to that stream
and lets images and head boxes through, nothing else (the reference masked with the hidden ground truth).

Validation samples 10 DDIM steps from pure noise (eta 1) and scores the maps with the recipe's protocol.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from gazelab.data.targets import HEATMAP_SIZE
from gazelab.gcdr.conditioning import prepare_inputs
from gazelab.gcdr.corrupt import add_distractors
from gazelab.gcdr.guide import guide_fold, guide_heatmaps
from gazelab.gcdr.model import DiffusionConfig, HeatmapDiffusion
from gazelab.gcdr.official import load_diffusion
from gazelab.gcdr.refine import ddim_sample
from gazelab.models.base import GazeModel
from gazelab.models.checkpoints import load_state, load_state_dict_file
from gazelab.models.registry import create_model
from gazelab.train.losses_semgaze import gaze_directions
from gazelab.train.metric import ProtocolMetric
from gazelab.train.module import published_weights

UNLABELLED_KEYS = ("images", "heads", "image_index", "prior_inframe")
"""The only fields of an unlabelled batch the training step may read."""


def unlabelled_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """The label-free part of an unlabelled batch (anything else it carries is ignored)."""
    return {k: batch[k] for k in UNLABELLED_KEYS if k in batch}


def ema_decay(step: int, warmup: int = 15, ceiling: float = 0.99) -> float:
    """GCDR's teacher decay: 0 for the first ``warmup`` steps (teacher = student), then rising to ``ceiling``."""
    return min(1 - 1 / (step // warmup + 1), ceiling)


def rampup(epoch: float, epochs: float = 5.0) -> float:
    """Sigmoid-shaped ramp from ~0.007 to 1 over ``epochs`` (Laine & Aila), used for the consistency weight."""
    if epochs <= 0:
        return 1.0
    phase = 1 - min(epoch, epochs) / epochs
    return math.exp(-5 * phase * phase)


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` [N] over ``mask`` [N]; zero (still differentiable) when nothing is selected."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1)


class DiffusionModule(L.LightningModule):
    """Trains a :class:`HeatmapDiffusion` (see the module docstring).

    Args:
        config: architecture overrides (keys of :class:`DiffusionConfig`) on the published model, or on the
            tiny one with ``tiny``.
        tiny: start from :meth:`DiffusionConfig.tiny` (tests, synthetic data).
        vat_weights: initialise the VAT encoder from a VAT spatial weight file or zoo name (``vat_spatial``).
        init_weights: start from a diffusion model file (official GCDR or gazelab), e.g. the supervised model
            for the mean-teacher stage.
        lr: Adam learning rate.
        loss_weight: factor of the x0 MSE (10000).
        mean_teacher: train the mean-teacher stage (batches from :class:`~gazelab.gcdr.data.MeanTeacherData`).
        consistency_weight: maximum weight of the KL consistency (4000).
        rampup_epochs: epochs of the consistency ramp-up (5).
        ema_ceiling: the teacher's final EMA decay (0.99).
        ema_warmup: steps per EMA decay increment (15).
        teacher_steps: DDIM steps of the teacher's sampling from noise (10); also used for validation.
        eta: DDIM stochasticity of teacher and validation sampling (1.0).
        protocol: evaluation protocol of the validation set.
        direction_weight: factor of the auxiliary angular loss ``(1 - cos) / 2`` of an encoder that reads a gaze
            direction from the face crop (``encoder_direction``; in-frame labelled people only).
        guide_weights: weights of the guide model (``encoder_guide``) trained on all labelled people; it
            conditions unlabelled and validation people and is saved with the teacher.
        guide_folds: weights of the cross-fitted guide models, fold ``k``'s model trained on the labelled images
            outside fold ``k`` (:mod:`gazelab.gcdr.guide`); a labelled person's guide map comes from the model of
            their image's fold. Without them, labelled people are guided by ``guide_weights`` as well.
        distractors: share of labelled training people whose map gets a second, random blob before it is
            noised (:func:`gazelab.gcdr.corrupt.add_distractors`; the loss still asks for the clean map). 0 in
            the published recipe.
    """

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        tiny: bool = False,
        vat_weights: str | None = None,
        init_weights: str | None = None,
        lr: float = 5e-5,
        loss_weight: float = 1e4,
        mean_teacher: bool = False,
        consistency_weight: float = 4000.0,
        rampup_epochs: float = 5.0,
        ema_ceiling: float = 0.99,
        ema_warmup: int = 15,
        teacher_steps: int = 10,
        eta: float = 1.0,
        protocol: str = "gazefollow",
        direction_weight: float = 10.0,
        guide_weights: str | None = None,
        guide_folds: Sequence[str] = (),
        distractors: float = 0.0,
    ) -> None:
        super().__init__()
        base = DiffusionConfig.tiny() if tiny else DiffusionConfig()
        resolved = DiffusionConfig.from_dict({**base.to_dict(), **(config or {})})
        self.save_hyperparameters()
        self.hparams["config"] = resolved.to_dict()  # checkpoints carry the whole architecture
        self.model = load_diffusion(init_weights, resolved).train() if init_weights else HeatmapDiffusion(resolved)
        if vat_weights:
            self._load_vat(vat_weights)
        self.fold_guides = nn.ModuleList(self._guide_model(weights) for weights in guide_folds)
        if guide_weights:
            self.model.guide = self._guide_model(guide_weights)
        self.teacher: AveragedModel | None = None
        if mean_teacher:
            self.teacher = AveragedModel(self.model, avg_fn=self._ema, use_buffers=False).requires_grad_(False)
        self.val_metric: ProtocolMetric | None = None

    def _ema(self, average: Tensor, current: Tensor, count: Tensor) -> Tensor:
        decay = ema_decay(int(count), self.hparams.ema_warmup, self.hparams.ema_ceiling)
        return decay * average + (1 - decay) * current

    def _load_vat(self, weights: str) -> None:
        """The VAT spatial model's trunks and attention into the encoder (its decoder and in/out are not used)."""
        encoder = self.model.conditioning.encoder
        state = load_state_dict_file(published_weights(weights))
        wanted = encoder.state_dict()
        load_state(encoder, {k: v for k, v in state.items() if k in wanted}, str(weights))

    def _guide_model(self, weights: str) -> GazeModel:
        name = self.model.config.encoder_guide
        if name is None:
            raise ValueError("guide weights need a teacher built with a guide model (config encoder_guide)")
        return create_model(name, pretrained=weights, progress=False).requires_grad_(False).eval()

    def train(self, mode: bool = True) -> DiffusionModule:
        """As ``nn.Module.train``, but the frozen fold guides always stay in eval mode."""
        super().train(mode)
        self.fold_guides.eval()
        return self

    # -- losses -------------------------------------------------------------------------------------------------
    def _inputs(self, batch: dict[str, Any], labelled: bool = False) -> dict[str, Tensor]:
        """The teacher's inputs of a batch; ``labelled``: its people trained the guide (use the fold guides)."""
        images = batch["images"]
        pictures = [images[i] for i in batch["image_index"].tolist()]
        heads = batch["heads"].to(self.device)
        if not (labelled and len(self.fold_guides)):
            return self.model.prepare(pictures, heads)
        inputs = prepare_inputs(pictures, heads, self.model.config.input_size)
        paths = [batch["paths"][i] for i in batch["image_index"].tolist()]
        folds = torch.tensor([guide_fold(path, len(self.fold_guides)) for path in paths])
        guide = torch.zeros(len(pictures), 1, HEATMAP_SIZE, HEATMAP_SIZE, device=self.device)
        for fold, model in enumerate(self.fold_guides):
            rows = torch.nonzero(folds == fold).flatten().tolist()
            if rows:
                guide[rows] = guide_heatmaps(model, [pictures[r] for r in rows], heads[rows])[:, None].to(guide)
        return {**inputs, "guide": guide}

    def _predict(self, clean: Tensor, inputs: dict[str, Tensor], index: Tensor, noise: Tensor) -> Tensor:
        schedule = self.model.schedule
        x_t = schedule.q_sample(clean[:, None], index, noise)
        return self.model(schedule.to_model(x_t), schedule.embedding_value(index), **inputs)[:, 0]

    def supervised_loss(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
        """(loss, x0 predictions [N, 64, 64]) of a labelled batch: masked x0 MSE at random timesteps, x weight."""
        targets = batch["heatmaps"].to(self.device, torch.float32)
        index = torch.randint(0, self.model.config.timesteps, (len(targets),), device=self.device)
        inputs = self._inputs(batch, labelled=True)
        corrupted = add_distractors(targets, self.hparams.distractors) if self.training else targets
        pred = self._predict(corrupted, inputs, index, torch.randn_like(targets[:, None]))
        per_person = (pred - targets).pow(2).mean(dim=(-2, -1))
        inframe = batch["inout"].to(self.device) == 1
        loss = self.hparams.loss_weight * masked_mean(per_person, inframe)
        direction = self.model.gaze_direction(inputs["face"])
        if direction is not None:
            wanted, known = gaze_directions(batch["heads"].to(direction), batch["gaze"].to(direction))
            cosine = F.cosine_similarity(direction, wanted, dim=1)
            loss = loss + self.hparams.direction_weight * masked_mean((1 - cosine) / 2, known & inframe)
        return loss, pred

    def _from_noise(self, inputs: dict[str, Tensor], count: int) -> Tensor:
        """The student's x0 prediction from pure noise at t = T (how unlabelled people enter the student)."""
        noise = torch.randn(count, 1, HEATMAP_SIZE, HEATMAP_SIZE, device=self.device)
        index = torch.full((count,), self.model.config.timesteps - 1, device=self.device)
        schedule = self.model.schedule
        return self.model(schedule.to_model(noise), schedule.embedding_value(index), **inputs)[:, 0]

    @torch.no_grad()
    def sample(self, model: HeatmapDiffusion, inputs: dict[str, Tensor]) -> Tensor:
        """x0 [N, 64, 64] sampled from pure noise with ``teacher_steps`` DDIM steps (teacher, validation)."""
        schedule = model.schedule
        context = model.context(**inputs)
        indices = schedule.sampling_indices(schedule.timesteps, self.hparams.teacher_steps)
        start = torch.randn(len(context[0]), 1, HEATMAP_SIZE, HEATMAP_SIZE, device=self.device)

        def noise(shape: Sequence[int]) -> Tensor:
            return torch.randn(len(start), *shape, device=self.device)

        x0 = ddim_sample(lambda x, t: model.denoise(x, t, context), schedule, start, indices, self.hparams.eta, noise)
        return x0[:, 0]

    def mean_teacher_loss(self, batch: dict[str, Any], epoch: float) -> dict[str, Tensor]:
        """Losses of one two-stream, two-view batch (``labelled``/``unlabelled``, each ``view1``/``view2``)."""
        assert self.teacher is not None, "built with mean_teacher=False"
        labelled = batch["labelled"]
        unlabelled = {view: unlabelled_inputs(batch["unlabelled"][view]) for view in ("view1", "view2")}
        supervised, student_l = self.supervised_loss(labelled["view1"])
        u1 = unlabelled["view1"]
        student_u = self._from_noise(self._inputs(u1), len(u1["heads"]))
        teacher: HeatmapDiffusion = self.teacher.module
        teacher_l = self.sample(teacher, self._inputs(labelled["view2"], labelled=True))
        teacher_u = self.sample(teacher, self._inputs(unlabelled["view2"]))
        student = torch.cat([student_l, student_u]).flatten(1)
        target = torch.cat([teacher_l, teacher_u]).flatten(1)
        kl = F.kl_div(F.log_softmax(student, dim=1), F.log_softmax(target, dim=1), log_target=True, reduction="none")
        u_inframe = u1.get("prior_inframe", torch.ones(len(u1["heads"]), dtype=torch.bool)).to(self.device)
        inframe = torch.cat([labelled["view1"]["inout"].to(self.device) == 1, u_inframe.bool()])
        consistency = masked_mean(kl.sum(dim=1), inframe)
        weight = self.hparams.consistency_weight * rampup(epoch, self.hparams.rampup_epochs)
        return {"total": supervised + weight * consistency, "supervised": supervised, "consistency": consistency}

    # -- Lightning hooks ----------------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        if self.teacher is None:
            loss, _ = self.supervised_loss(batch)
            self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(batch["heads"]))
            return loss
        losses = self.mean_teacher_loss(batch, float(self.current_epoch))
        size = len(batch["labelled"]["view1"]["heads"]) + len(batch["unlabelled"]["view1"]["heads"])
        self.log("train_loss", losses["total"], prog_bar=True, on_step=True, on_epoch=True, batch_size=size)
        self.log_dict({f"train_{k}": v for k, v in losses.items() if k != "total"}, on_epoch=True, batch_size=size)
        return losses["total"]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.teacher is None:
            return
        self.teacher.update_parameters(self.model)
        with torch.no_grad():
            for mine, theirs in zip(self.teacher.module.buffers(), self.model.buffers()):
                mine.copy_(theirs)

    def on_validation_epoch_start(self) -> None:
        if self.val_metric is None:
            targets = self.trainer.datamodule.val_targets
            self.val_metric = ProtocolMetric(self.hparams.protocol, targets, with_inout=False).to(self.device)
        self.val_metric.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        model = self.teacher.module if self.teacher is not None else self.model
        heatmaps = self.sample(model, self._inputs(batch))
        self.val_metric.update(batch["rows"], heatmaps.clamp(0, 1), None)

    def on_validation_epoch_end(self) -> None:
        scores = self.val_metric.compute()
        self.log_dict({f"val_{k}": v.float() for k, v in scores.items()}, prog_bar=True, sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.hparams.lr)
