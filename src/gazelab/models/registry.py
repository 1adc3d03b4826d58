"""The model zoo: every model by name, with its architecture and where its published weights live.

``create_model(name, pretrained=...)`` is the only way the rest of gazelab (and users) build models, so a
name always means the same architecture, preprocessing and weights. Checksums and sizes are listed only when
known from the publisher; ``None`` means "not verified beyond loading strictly".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from torch import Tensor

from gazelab.errors import GazelabError
from gazelab.models.base import GazeModel
from gazelab.models.checkpoints import LoadReport, WeightFile, fetch, load_state_dict_file
from gazelab.models.gazelle import GazeLLE, GazeLLEConfig
from gazelab.models.official import load_chong, load_dinov2, load_gazelle, load_imagenet_trunks
from gazelab.models.official_semgaze import load_semgaze
from gazelab.models.pdp import PDPSpatial
from gazelab.models.pdp_temporal import PDPTemporal
from gazelab.models.semgaze import SemGaze, SemGazeConfig
from gazelab.models.vat import VATSpatial, VATTemporal

GAZELLE_RELEASE = "https://github.com/fkryan/gazelle/releases/download/v1.0.0/"
DINOV2_RELEASE = "https://dl.fbaipublicfiles.com/dinov2/"
RESNET50_IMAGENET = WeightFile("https://download.pytorch.org/models/resnet50-0676ba61.pth", sha256="0676ba61")
"""torchvision's ResNet-50 ``IMAGENET1K_V1`` (``ResNet50_Weights.IMAGENET1K_V1.url``): the Chong trunks' start."""


def _dinov2_file(arch: str, registers: int = 0) -> WeightFile:
    suffix = f"_reg{registers}" if registers else ""
    return WeightFile(f"{DINOV2_RELEASE}{arch}/{arch}{suffix}_pretrain.pth")


DINOV2_WEIGHTS: dict[str, WeightFile] = {
    **{f"dinov2_vit{s}14": _dinov2_file(f"dinov2_vit{s}14") for s in "sblg"},
    **{f"dinov2_vit{s}14_reg": _dinov2_file(f"dinov2_vit{s}14", registers=4) for s in "sblg"},
}
"""Official DINOv2 backbone files by architecture name."""

LoadWeights = Callable[[GazeModel, dict[str, Tensor], str, bool], LoadReport]
LoadBackbone = Callable[[GazeModel, dict[str, Tensor], str], LoadReport]


@dataclass(frozen=True)
class ModelSpec:
    """One zoo entry."""

    name: str
    build: Callable[[], GazeModel]
    load_weights: LoadWeights
    """Imports the published weight file's format: ``(model, state_dict, source, allow_missing_inout)``."""
    load_backbone: LoadBackbone
    backbone: str
    weights: WeightFile | None
    """The published model (or decoder) weights; None for architectures without released weights."""
    backbone_weights: WeightFile | None
    data: str
    """What the published weights were trained on."""


def _load_gazelle_backbone(model: GazeModel, state_dict: dict[str, Tensor], source: str) -> LoadReport:
    return load_dinov2(model.backbone, state_dict, source)


def _gazelle(name: str, config: GazeLLEConfig, released: bool, data: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        build=partial(GazeLLE, config),
        load_weights=lambda model, sd, source, allow: load_gazelle(model, sd, source, allow_missing_inout=allow),
        load_backbone=_load_gazelle_backbone,
        backbone=config.backbone,
        weights=WeightFile(f"{GAZELLE_RELEASE}{name}.pt") if released else None,
        backbone_weights=DINOV2_WEIGHTS.get(config.backbone),
        data=data,
    )


def _gazelle_dinov2(name: str, backbone: str, inout: bool, released: bool, data: str) -> ModelSpec:
    return _gazelle(name, GazeLLEConfig(backbone=backbone, inout=inout), released, data)


def _gazelle_tiny(name: str, inout: bool) -> ModelSpec:
    """Real geometry (448 px, 32x32 tokens, 64x64 heatmaps) at a tiny width: for tests and examples."""
    config = GazeLLEConfig(backbone="dinov2_tiny", inout=inout, dim=32, heads=2, layers=2)
    return _gazelle(name, config, released=False, data="none (random weights, for tests)")


def _gazelle_synth() -> ModelSpec:
    """The synthetic benchmark's model (``configs/synthetic/gazelle_tiny.yaml``): Gaze-LLE's decoder (64 wide,
    3 layers) on a small DINOv2-style ViT trained end to end at 224 px — a random *frozen* backbone gives the
    decoder nothing to learn from, and a real DINOv2 is too slow to train on a laptop CPU.

    Plus a gaze direction read from a 32 px head crop and the gaze field it casts as decoder prompts
    (:mod:`gazelab.models.gaze_field`): without them a from-scratch backbone learns to find objects but not, in a
    CPU budget, which one a person looks at (avg L2 stuck near 0.40, worse than the centre prior's 0.356, after 8
    epochs; with them 0.165 after one — see docs/training.md)."""
    config = GazeLLEConfig(backbone="dinov2_synth", in_size=224, dim=64, heads=4, layers=3, drop_path=0.0,
                           freeze_backbone=False, gaze_vector=True, head_crop=32, gaze_field=True)  # fmt: skip
    data = "none published (train it: configs/synthetic/gazelle_tiny.yaml, or gazelab demo)"
    return _gazelle("gazelle_synth", config, released=False, data=data)


def _chong(name: str, build: Callable[[], GazeModel], tiny: bool = False, data: str | None = None) -> ModelSpec:
    """VAT / PDP architectures; no download URL is listed, so ``pretrained`` takes a path to the official file.

    Their "backbone" is the two ResNet-50 trunks: ``backbone_weights=True`` starts them from torchvision's
    ImageNet ResNet-50, as the authors trained. ``tiny`` variants (stem width 8) keep the real geometry for tests.
    """
    return ModelSpec(
        name=name,
        build=partial(build, width=8) if tiny else build,
        load_weights=lambda model, sd, source, allow: load_chong(model, sd, source, allow_missing_inout=allow),
        load_backbone=load_imagenet_trunks,
        backbone="resnet50_chong",
        weights=None,
        backbone_weights=None if tiny else RESNET50_IMAGENET,
        data=data or ("none (random weights, for tests)" if tiny else "authors' release, by path (no URL listed)"),
    )


def _semgaze(name: str, config: SemGazeConfig, data: str) -> ModelSpec:
    """SemGaze; the authors' Lightning checkpoints have no URL listed, so ``pretrained`` takes their path."""
    return ModelSpec(
        name=name,
        build=partial(SemGaze, config),
        load_weights=lambda model, sd, source, allow: load_semgaze(model, sd, source),
        load_backbone=_no_separate_backbone,
        backbone="multimae_vitb16" if config.dim == 768 else "none",
        weights=None,
        backbone_weights=None,
        data=data,
    )


def _no_separate_backbone(model: GazeModel, state_dict: dict[str, Tensor], source: str) -> LoadReport:
    raise GazelabError(f"{source}: SemGaze models load as a whole (their checkpoint holds the image encoder)")


SEMGAZE_TINY = SemGazeConfig(image_size=128, patch_size=8, dim=64, depth=3, heads=4, head_size=32,
                             decoder_heads=4, decoder_mlp=128, gaze_field=True, he_label_init=True,
                             label_at_target=True)  # fmt: skip
"""Real output geometry (16x16 tokens, 64x64 heatmaps, 512-d labels) at a small width: tests, synthetic data.

Not the published design: ``gaze_field`` biases the decoder's attention and gates its heatmaps with the gaze
field cast along the gaze encoder's vector, ``he_label_init`` starts the label MLP so that people's label
embeddings differ, and ``label_at_target`` lets the label read the image tokens under the person's heatmap.
Trained from scratch in a CPU budget, SemGaze without them found objects but not which one a
person looks at, nor what it is (docs/semgaze.md)."""


_GAZEFOLLOW = "GazeFollow"
_VAT = "GazeFollow, then VideoAttentionTarget"

MODEL_ZOO: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        _gazelle_dinov2("gazelle_dinov2_vitb14", "dinov2_vitb14", inout=False, released=True, data=_GAZEFOLLOW),
        _gazelle_dinov2("gazelle_dinov2_vitl14", "dinov2_vitl14", inout=False, released=True, data=_GAZEFOLLOW),
        _gazelle_dinov2("gazelle_dinov2_vitb14_inout", "dinov2_vitb14", inout=True, released=True, data=_VAT),
        _gazelle_dinov2("gazelle_dinov2_vitl14_inout", "dinov2_vitl14", inout=True, released=True, data=_VAT),
        _gazelle_dinov2("gazelle_dinov2_vits14", "dinov2_vits14", inout=False, released=False, data="unreleased"),
        _gazelle_dinov2("gazelle_dinov2_vits14_inout", "dinov2_vits14", inout=True, released=False, data="unreleased"),
        _gazelle_tiny("gazelle_tiny", inout=False),
        _gazelle_tiny("gazelle_tiny_inout", inout=True),
        _gazelle_synth(),
        _chong("vat_spatial", VATSpatial),
        _chong("vat_temporal", VATTemporal),
        _chong("vat_gc", partial(VATSpatial, gradcam=True), data="none published (GCDR's baseline: train it)"),
        _chong("pdp_spatial", PDPSpatial),
        _chong("pdp_spatial_depth", partial(PDPSpatial, depth=True)),
        _chong("pdp_temporal_depth", partial(PDPTemporal, depth=True)),
        _chong("vat_spatial_tiny", VATSpatial, tiny=True),
        _chong("vat_temporal_tiny", VATTemporal, tiny=True),
        _chong("vat_gc_tiny", partial(VATSpatial, gradcam=True), tiny=True),
        _chong("pdp_spatial_tiny", PDPSpatial, tiny=True),
        _chong("pdp_spatial_depth_tiny", partial(PDPSpatial, depth=True), tiny=True),
        _chong("pdp_temporal_depth_tiny", partial(PDPTemporal, depth=True), tiny=True),
        _semgaze("semgaze_gazefollow", SemGazeConfig(), "GazeFollow (authors' checkpoint, by path; no URL listed)"),
        _semgaze("semgaze_gazehoi", SemGazeConfig(), "GazeHOI (authors' checkpoint, by path; no URL listed)"),
        _semgaze("semgaze_tiny", SEMGAZE_TINY, "none (random; train it: configs/synthetic/semgaze_tiny.yaml)"),
    ]
}


def list_models(pretrained: bool = False) -> list[str]:
    """Zoo names; with ``pretrained=True`` only those with published weights."""
    return [name for name, spec in MODEL_ZOO.items() if spec.weights is not None or not pretrained]


def get_model_spec(name: str) -> ModelSpec:
    try:
        return MODEL_ZOO[name]
    except KeyError:
        raise GazelabError(f"unknown model {name!r}; known models: {', '.join(MODEL_ZOO)}") from None


def _weight_path(choice: bool | str | Path, published: WeightFile | None, what: str, progress: bool) -> Path:
    if choice is True:
        if published is None:
            raise GazelabError(f"{what} has no published weights; pass a file path instead of True")
        return fetch(published, progress=progress)
    return Path(choice)


def create_model(
    name: str,
    pretrained: bool | str | Path = False,
    *,
    backbone_weights: bool | str | Path | None = None,
    allow_missing_inout: bool = False,
    progress: bool = True,
) -> GazeModel:
    """Build a zoo model, optionally with weights.

    - ``pretrained``: False (random decoder), True (the published weights, downloaded to the cache on first
      use) or a path to a weight file in the published format or gazelab's own.
    - ``backbone_weights``: None loads the published backbone exactly when the model weights lack one (a
      released decoder file); True loads it anyway (e.g. to train a new decoder on pretrained DINOv2); a path
      uses that file (official or Hugging Face DINOv2 layout); False keeps the backbone as it is.
    - ``allow_missing_inout``: accept weights without the in/out head for an in/out model (the start of VAT
      fine-tuning from a GazeFollow checkpoint); otherwise that is an error.
    """
    spec = get_model_spec(name)
    model = spec.build()
    needs_backbone = False
    if pretrained:
        path = _weight_path(pretrained, spec.weights, name, progress)
        report = spec.load_weights(model, load_state_dict_file(path), str(path), allow_missing_inout)
        needs_backbone = any(key.startswith("backbone.") for key in report.missing)
    if backbone_weights is None:
        backbone_weights = needs_backbone
    if backbone_weights:
        path = _weight_path(backbone_weights, spec.backbone_weights, f"backbone {spec.backbone}", progress)
        spec.load_backbone(model, load_state_dict_file(path), str(path))
    return model
