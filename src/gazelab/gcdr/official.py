"""Weight files of the heatmap diffusion model: GCDR's official checkpoints and gazelab's own.

Official state dicts (``GF_Diffusion_Model_new``; possibly wrapped under ``model``/``state_dict`` and prefixed
``module.`` by DataParallel) name the VAT encoder ``feat_extractor.*``, the pyramid ``compress_conv1``,
``upsample_2`` ... and the UNet ``diffusion_model.*``; they also carry the noise schedule as buffers
``diffusion.betas``, ``diffusion.alphas_cumprod``, ... Those buffers are not loaded — the schedule is recomputed
from the config — but a file whose ``alphas_cumprod`` disagrees with it is refused (it was trained with another
schedule, and refining with ours would be silently wrong).

gazelab's own files are Lightning checkpoints of :class:`~gazelab.gcdr.lightning.DiffusionModule` (weights under
``model.``, the architecture in ``hyper_parameters["config"]``) or plain state dicts with gazelab's names.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gazelab.gcdr.model import DiffusionConfig, HeatmapDiffusion
from gazelab.models.checkpoints import CheckpointError, LoadReport, load_state

_RENAMES = (
    ("feat_extractor.", "conditioning.encoder."),
    ("compress_", "conditioning.compress_"),
    ("upsample", "conditioning.upsample"),
    ("diffusion_model.", "unet."),
)
SCHEDULE_PREFIX = "diffusion."
SCHEDULE_TOLERANCE = 1e-6


def _strip(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}


def official_to_gazelab(state_dict: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Official names -> gazelab names; returns (weights, schedule buffers found in the file)."""
    state = _strip(state_dict, "module.")
    schedule = {k[len(SCHEDULE_PREFIX) :]: v for k, v in state.items() if k.startswith(SCHEDULE_PREFIX)}
    out = {}
    for key, value in state.items():
        if key.startswith(SCHEDULE_PREFIX):
            continue
        for old, new in _RENAMES:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        out[key] = value
    return out, schedule


def load_official(model: HeatmapDiffusion, state_dict: Mapping[str, Tensor], source: str) -> LoadReport:
    """An official GCDR diffusion state dict into ``model``, strictly (schedule buffers checked, not loaded)."""
    weights, schedule = official_to_gazelab(state_dict)
    theirs = schedule.get("alphas_cumprod")
    if theirs is not None:
        ours = model.schedule.alphas_cumprod
        if theirs.shape != ours.shape or (theirs.double() - ours).abs().max() > SCHEDULE_TOLERANCE:
            raise CheckpointError(
                f"{source}: its noise schedule (diffusion.alphas_cumprod, {theirs.numel()} steps) differs from the "
                f"model's ({model.config.timesteps} steps, betas {model.config.beta_start}..{model.config.beta_end} "
                "x 1000/T) — set the config's timesteps/beta_start/beta_end to the ones it was trained with"
            )
    return load_state(model, weights, source)


def _read(path: Path) -> Mapping[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path}: weight file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        raise CheckpointError(f"{path}: not a readable weights-only checkpoint ({str(err).splitlines()[0]})") from None


def load_diffusion(path: str | Path, config: DiffusionConfig | None = None) -> HeatmapDiffusion:
    """A model from an official GCDR file or a gazelab checkpoint, in eval mode.

    The architecture comes from ``config``, else from the checkpoint's hyper-parameters, else the published one.
    """
    path = Path(path)
    obj = _read(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a mapping of parameter names to tensors")
    hparams = obj.get("hyper_parameters")
    if config is None and isinstance(hparams, Mapping) and isinstance(hparams.get("config"), Mapping):
        config = DiffusionConfig.from_dict(dict(hparams["config"]))
    for wrapper in ("state_dict", "model"):
        if isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    state = {k: v for k, v in obj.items() if isinstance(v, Tensor)}
    if any(k.startswith("model.") for k in state):  # a Lightning checkpoint: the student's weights
        state = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    model = HeatmapDiffusion(config)
    state = _strip(state, "module.")
    if any(k.startswith(("unet.", "conditioning.")) for k in state):
        load_state(model, state, str(path))
    else:
        load_official(model, state, str(path))
    return model.eval()
