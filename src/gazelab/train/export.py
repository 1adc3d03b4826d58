"""Trained weights in the published file format of their family, so they load where the originals do.

Gaze-LLE's released files hold the decoder only (``pos_embed``, ``linear.*``, ``head_token.weight``,
``transformer.*``, ``heatmap_head.*`` and, for in/out models, ``inout_token.weight``/``inout_head.*``) and take
the backbone from the DINOv2 release; a model trained with its backbone frozen is exported exactly so. A model
whose backbone was trained too keeps it, under ``backbone.*`` (gazelab's layout, which
:func:`~gazelab.models.create_model` also reads). Families add their exporter to :data:`EXPORTERS`.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from gazelab.errors import GazelabError
from gazelab.models import get_model_spec
from gazelab.models.base import GazeModel
from gazelab.models.checkpoints import CheckpointError, load_state
from gazelab.models.gazelle import GazeLLE
from gazelab.models.official import chong_state_dict
from gazelab.models.official_semgaze import semgaze_export
from gazelab.models.semgaze import SemGaze
from gazelab.models.vat import ChongModel
from gazelab.train.atomic import write_atomic

Exporter = Callable[[GazeModel, bool], dict[str, Tensor]]


def gazelle_state_dict(model: GazeLLE, include_backbone: bool) -> dict[str, Tensor]:
    """The released Gaze-LLE layout: the fixed ``pos_embed`` buffer first, then the decoder parameters."""
    state = {"pos_embed": model.pos_embed}
    state.update((k, v) for k, v in model.state_dict().items() if include_backbone or not k.startswith("backbone."))
    return {k: v.detach().cpu().clone() for k, v in state.items()}


EXPORTERS: dict[type[GazeModel], Exporter] = {
    GazeLLE: gazelle_state_dict,
    ChongModel: chong_state_dict,
    SemGaze: semgaze_export,
}


def official_state_dict(model: GazeModel, include_backbone: bool = False) -> dict[str, Tensor]:
    for family, exporter in EXPORTERS.items():
        if isinstance(model, family):
            return exporter(model, include_backbone)
    raise GazelabError(f"no export format known for {type(model).__name__}")


def save_weights(state: dict[str, Tensor], path: str | Path) -> Path:
    """``torch.save`` of a plain state dict (what the references load), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda handle: torch.save(state, handle))
    return path


def export_checkpoint(checkpoint: str | Path, out: str | Path) -> Path:
    """A training checkpoint (``.ckpt``) -> the family's weight file at ``out``.

    The model is rebuilt from the checkpoint's hyper-parameters and loaded strictly, so a checkpoint that does
    not match its model is refused instead of exported half random.
    """
    try:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
        hparams = ckpt["hyper_parameters"]
        name, trained_backbone = hparams["name"], bool(hparams["train_backbone"])
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{checkpoint}: refused — the file holds Python objects other than tensors and plain values "
            "(a checkpoint could run code when loaded); export only checkpoints you trained"
        ) from None
    except (OSError, RuntimeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{checkpoint}: not a gazelab training checkpoint ({err})") from None
    model = get_model_spec(name).build()
    prefix = "model."
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    load_state(model, state, str(checkpoint))
    return save_weights(official_state_dict(model, trained_backbone), out)


class ExportWeights(L.Callback):
    """When training ends, export the best checkpoint (or the final weights) as ``<root>/weights/<model>.pt``."""

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        out = Path(trainer.default_root_dir) / "weights" / f"{pl_module.hparams.name}.pt"
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        if best:
            export_checkpoint(best, out)
            rank_zero_info(f"exported {best} -> {out}")
        else:
            model = pl_module.model
            save_weights(official_state_dict(model, bool(pl_module.hparams.train_backbone)), out)
            rank_zero_info(f"exported the final weights -> {out}")
