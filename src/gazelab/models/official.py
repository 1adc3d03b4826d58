"""Official checkpoint formats -> gazelab models, with key maps and strict loading.

- DINOv2: the official ``dinov2_*_pretrain.pth`` files need no renaming; Hugging Face copies
  (``facebook/dinov2-*`` ``model.safetensors``: ``embeddings.*``, ``encoder.layer.i.*`` with separate
  query/key/value) are mapped to the official names.
- Gaze-LLE: released ``gazelle_dinov2_*.pt`` files hold the decoder only (the backbone comes from the DINOv2
  file); a full official model state dict (``backbone.model.*``) and gazelab's own files (``backbone.*``)
  load too. The fixed ``pos_embed`` buffer is taken from the file when present, recomputed otherwise.
- Chong-style models (VAT, PDP): the released ``.pt`` files (weights under ``model``, unwrapped when read) use
  the model's own names; they load strictly. Their ImageNet start (how the authors trained) maps torchvision's
  ResNet-50 onto both trunks: see :func:`load_imagenet_trunks`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import Tensor

from gazelab.models.backbones.dinov2 import DinoV2
from gazelab.models.checkpoints import CheckpointError, LoadReport, load_state
from gazelab.models.gazelle import GazeLLE
from gazelab.models.vat import ChongModel

_HF_DINOV2_RENAMES = [
    (r"^embeddings\.cls_token$", "cls_token"),
    (r"^embeddings\.mask_token$", "mask_token"),
    (r"^embeddings\.position_embeddings$", "pos_embed"),
    (r"^embeddings\.register_tokens$", "register_tokens"),
    (r"^embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"blocks.\1.attn.proj."),
    (r"^encoder\.layer\.(\d+)\.layer_scale([12])\.lambda1$", r"blocks.\1.ls\2.gamma"),
    (r"^encoder\.layer\.(\d+)\.mlp\.weights_in\.", r"blocks.\1.mlp.w12."),
    (r"^encoder\.layer\.(\d+)\.mlp\.weights_out\.", r"blocks.\1.mlp.w3."),
    (r"^encoder\.layer\.(\d+)\.(norm[12]|mlp\.fc[12])\.", r"blocks.\1.\2."),
    (r"^layernorm\.", "norm."),
]
_HF_QKV = re.compile(r"^encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)$")


def dinov2_from_hf(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Hugging Face ``Dinov2Model`` / ``Dinov2WithRegistersModel`` names -> official DINOv2 names.

    Separate query/key/value projections are concatenated into ``qkv`` (in that order). Unknown keys are
    kept, so strict loading reports them.
    """
    out: dict[str, Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, Tensor]] = {}
    for key, value in state_dict.items():
        match = _HF_QKV.match(key)
        if match:
            layer, part, leaf = match.groups()
            qkv.setdefault((layer, leaf), {})[part] = value
            continue
        for pattern, replacement in _HF_DINOV2_RENAMES:
            key, hits = re.subn(pattern, replacement, key)
            if hits:
                break
        out[key] = value
    for (layer, leaf), parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            raise CheckpointError(f"layer {layer}: attention {leaf} has only {sorted(parts)} of query/key/value")
        out[f"blocks.{layer}.attn.qkv.{leaf}"] = torch.cat([parts["query"], parts["key"], parts["value"]])
    return out


def load_dinov2(backbone: DinoV2, state_dict: Mapping[str, Tensor], source: str) -> LoadReport:
    """Official DINOv2 (or Hugging Face) weights into ``backbone``, strictly."""
    if "embeddings.cls_token" in state_dict:
        state_dict = dinov2_from_hf(state_dict)
    return load_state(backbone, state_dict, source)


def _is_inout_key(key: str) -> bool:
    return key.startswith(("inout_token.", "inout_head."))


def load_gazelle(
    model: GazeLLE, state_dict: Mapping[str, Tensor], source: str, allow_missing_inout: bool = False
) -> LoadReport:
    """Gaze-LLE weights (released decoder file, full official model, or gazelab's own) into ``model``.

    A file without any backbone key is a decoder file: the report lists the backbone keys (load the DINOv2
    file next). With
    ``allow_missing_inout`` a file without the in/out head (a GazeFollow model) loads into an in/out model,
    leaving that head as initialised — how VAT fine-tuning starts. Anything else missing is an error.
    """
    state = {re.sub(r"^backbone\.model\.", "backbone.", k): v for k, v in state_dict.items()}
    pos_embed = state.pop("pos_embed", None)
    if pos_embed is not None and pos_embed.shape != model.pos_embed.shape:
        raise CheckpointError(
            f"{source}: pos_embed is {tuple(pos_embed.shape)}, the model needs {tuple(model.pos_embed.shape)} "
            "(a different decoder width or input size)"
        )
    decoder_only = not any(k.startswith("backbone.") for k in state)

    def allowed(key: str) -> bool:
        return (decoder_only and key.startswith("backbone.")) or (allow_missing_inout and _is_inout_key(key))

    report = load_state(model, state, source, allow_missing=allowed)
    if pos_embed is not None:
        with torch.no_grad():
            model.pos_embed.copy_(pos_embed)
    return report


_CHONG_INOUT = tuple(f"{name}_inout." for name in ("compress_conv1", "compress_bn1", "compress_conv2", "compress_bn2"))
_CHONG_INOUT += ("fc_inout.",)
_CHONG_VIDEO_ONLY = ("convlstm_scene.", "temporal_")
"""Parts only the video models have (plus every block's ``bn_ds``; temporal PDP's ``fc_inout`` is in/out)."""


def _video_only(key: str) -> bool:
    return key.startswith(_CHONG_VIDEO_ONLY) or ".bn_ds." in key


def load_chong(
    model: ChongModel, state_dict: Mapping[str, Tensor], source: str, allow_missing_inout: bool = False
) -> LoadReport:
    """VAT or PDP weights (official names) into ``model``, strictly.

    With ``allow_missing_inout`` a file without the in/out branch loads, leaving it as initialised; into a
    video model (VAT ConvLSTM, temporal PDP) the image model's file loads too, leaving the video-only parts
    (ConvLSTM, temporal attention, ``bn_ds``) as initialised — how the authors start video training.
    """
    video = any(_video_only(key) for key in model.state_dict())

    def allowed(key: str) -> bool:
        return key.startswith(_CHONG_INOUT) or (video and _video_only(key))

    return load_state(model, state_dict, source, allow_missing=allowed if allow_missing_inout else ())


def chong_state_dict(model: ChongModel, include_backbone: bool = True) -> dict[str, Tensor]:
    """A trained VAT/PDP model in the released layout: every parameter and buffer under its own name (the
    released files are whole models, trunks included, so ``include_backbone`` changes nothing). Saved as
    is it loads with :func:`load_chong`; the authors' code reads ``torch.load(f)["model"]``, so wrap it as
    ``{"model": state}`` for them."""
    return {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}


_RESNET_PARTS = re.compile(r"^(conv1|bn1|layer[1-4])\.(.*)$")


def load_imagenet_trunks(model: ChongModel, state_dict: Mapping[str, Tensor], source: str) -> LoadReport:
    """torchvision ResNet-50 (``IMAGENET1K_V1``) weights onto the scene and face trunks.

    ``conv1``/``bn1``/``layer1-4`` go to both trunks; ``fc`` is dropped; ``layer5`` (not in ResNet-50), the
    ``bn_ds`` BatchNorms of the temporal model and everything after the trunks keep their initialisation. The
    scene stem's extra input channels (head, depth) start at zero, so at step 0 the scene trunk computes
    exactly ImageNet's features and learns to use the extra channels from there (mean-initialising them
    would shift every first-layer activation by the head box). Anything else that does not fit is an error.
    """
    mapped: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        match = _RESNET_PARTS.match(key)
        if match is None:
            if key.startswith("fc."):
                continue
            raise CheckpointError(f"{source}: unexpected key {key!r} — expected a torchvision ResNet-50 state dict")
        for part in ("scene", "face"):
            mapped[f"{match[1]}_{part}.{match[2]}"] = value
    stem = model.conv1_scene.weight
    rgb = mapped.get("conv1_scene.weight")
    if rgb is not None and rgb.ndim == 4 and rgb.shape[1] == 3 and stem.shape[1] > 3:
        padded = rgb.new_zeros(rgb.shape[0], stem.shape[1], *rgb.shape[2:])
        padded[:, :3] = rgb
        mapped["conv1_scene.weight"] = padded
    trunk = re.compile(r"^(conv1|bn1|layer[1-4])_(scene|face)\.")

    def kept(key: str) -> bool:
        return trunk.match(key) is None or ".bn_ds." in key

    return load_state(model, mapped, source, allow_missing=kept)
