"""GCDR's conditional heatmap diffusion model: context encoder + denoising UNet, and its configuration.

:class:`HeatmapDiffusion` predicts the clean gaze heatmap x0 from a noisy one, conditioned on the person (scene
image, head channel, face crop). The noise process is :class:`~gazelab.gcdr.schedule.DiffusionSchedule`; the
model holds it as a plain attribute (recomputed from the config, never stored in a state dict).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from torch import Tensor, nn

from gazelab.gcdr.conditioning import FEATURES, ContextEncoder, SimpleEncoder, VATEncoder, prepare_inputs
from gazelab.gcdr.guide import guide_heatmaps
from gazelab.gcdr.schedule import DiffusionSchedule
from gazelab.gcdr.unet import DenoisingUNet
from gazelab.models.base import GazeModel


@dataclass(frozen=True)
class DiffusionConfig:
    """Architecture and noise schedule. The defaults are the published model (Miao et al., ECCV 2024)."""

    encoder: Literal["vat", "simple"] = "vat"
    """``vat``: the VAT spatial encoder (two ResNet-50 trunks); ``simple``: a small CNN (tests, synthetic data)."""
    encoder_channels: int = 64
    """Output width of the ``simple`` encoder."""
    encoder_direction: bool = False
    """``simple`` encoder only: read a gaze direction from the face crop and add its gaze field to the input
    (synthetic data; the VAT encoder has a face pathway of its own)."""
    encoder_fine: bool = False
    """``simple`` encoder only: also add its input channels (scene, head channel, gaze field), pooled to each
    level and through a 3x3 convolution, to every context map. The published context is a 7x7 encoding made
    pixel-sized by transposed convolutions; the synthetic teacher needs object-sized detail to put a heatmap
    on an object its prior missed."""
    encoder_guide: str | None = None
    """``simple`` encoder only: the zoo name of a gaze model (``gazelle_synth``) whose heatmap of the person is an
    extra input channel; the model is kept, frozen, as :attr:`HeatmapDiffusion.guide` (see
    :mod:`gazelab.gcdr.guide`). The synthetic stand-in for the published encoder's start from trained VAT
    weights."""
    input_size: int = 224
    """Side of the encoder's square inputs."""
    model_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 3, 4)
    num_res_blocks: int = 2
    attention_levels: tuple[int, ...] = (2, 3)
    """UNet levels (0 = 64x64) with self-attention; published: 16x16 and 8x8."""
    num_heads: int = 4
    groups: int = 32
    dropout: float = 0.0
    timesteps: int = 500
    beta_start: float = 1e-4
    beta_end: float = 0.02
    scale: float = 2.0

    @classmethod
    def tiny(cls) -> DiffusionConfig:
        """A ~40k-parameter variant with the same structure (tests, smoke runs)."""
        return cls(
            encoder="simple",
            encoder_channels=8,
            input_size=32,
            model_channels=8,
            channel_mult=(1, 1, 1, 1),
            num_res_blocks=1,
            attention_levels=(3,),
            num_heads=2,
            groups=4,
        )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DiffusionConfig:
        """Inverse of ``asdict`` (lists back to tuples), for configs read from checkpoints or YAML."""
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class HeatmapDiffusion(nn.Module):
    """Context encoder (``conditioning``) + denoiser (``unet``); ``schedule`` is the noise process."""

    def __init__(self, config: DiffusionConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DiffusionConfig()
        widths = [config.model_channels * m for m in config.channel_mult]
        extras = config.encoder_direction or config.encoder_fine or config.encoder_guide
        if extras and config.encoder != "simple":
            raise ValueError("encoder_direction, encoder_fine and encoder_guide need the simple encoder "
                             "(encoder: simple)")  # fmt: skip
        if config.encoder == "vat":
            encoder, features = VATEncoder(), FEATURES
        elif config.encoder == "simple":
            encoder = SimpleEncoder(config.encoder_channels, direction=config.encoder_direction,
                                    guide=config.encoder_guide is not None)  # fmt: skip
            features = config.encoder_channels
        else:
            raise ValueError(f"unknown encoder {config.encoder!r}; use 'vat' or 'simple'")
        self.conditioning = ContextEncoder(encoder, features, widths, fine=config.encoder_fine)
        self.unet = DenoisingUNet(
            config.model_channels,
            config.channel_mult,
            config.num_res_blocks,
            config.attention_levels,
            config.num_heads,
            config.groups,
            config.dropout,
        )
        self.schedule = DiffusionSchedule(config.timesteps, config.beta_start, config.beta_end, config.scale)
        self.guide: GazeModel | None = None
        if config.encoder_guide is not None:
            from gazelab.models.registry import create_model

            self.guide = create_model(config.encoder_guide).requires_grad_(False).eval()

    def train(self, mode: bool = True) -> HeatmapDiffusion:
        """As ``nn.Module.train``, but the frozen guide model always stays in eval mode."""
        super().train(mode)
        if self.guide is not None:
            self.guide.eval()
        return self

    def prepare(self, pictures: Sequence[Tensor], boxes: Tensor) -> dict[str, Tensor]:
        """The conditioning inputs of N people: uint8 pictures [3, H, W] (one per person) and normalized head
        boxes [N, 4] -> ``scene``, ``head``, ``face`` (:func:`~gazelab.gcdr.conditioning.prepare_inputs`) and,
        with a guide model, its heatmaps as ``guide`` [N, 1, 64, 64]."""
        inputs = prepare_inputs(pictures, boxes, self.config.input_size)
        if self.guide is not None:
            inputs["guide"] = guide_heatmaps(self.guide, pictures, boxes)[:, None].to(boxes.device)
        return inputs

    def context(self, scene: Tensor, head: Tensor, face: Tensor, guide: Tensor | None = None) -> list[Tensor]:
        """The per-level context maps of a batch of people (computed once per refinement, reused every step)."""
        return self.conditioning(scene, head, face, guide)

    def gaze_direction(self, face: Tensor) -> Tensor | None:
        """The encoder's gaze directions [N, 2] from face crops, for its auxiliary loss (None: it has none)."""
        reader = getattr(self.conditioning.encoder, "gaze_direction", None)
        return None if reader is None else reader(face)

    def denoise(self, x_t: Tensor, t: Tensor, context: list[Tensor]) -> Tensor:
        """x_t in [0, 1] [N, 1, 64, 64] at raw timestep values ``t`` [N] -> predicted x0 [N, 1, 64, 64]."""
        return self.unet(x_t, t, context)

    def forward(
        self, x_t: Tensor, t: Tensor, scene: Tensor, head: Tensor, face: Tensor, guide: Tensor | None = None
    ) -> Tensor:
        return self.denoise(x_t, t, self.context(scene, head, face, guide))
