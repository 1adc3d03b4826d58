"""GCDR's conditional heatmap diffusion model: context encoder + denoising UNet, and its configuration.

:class:`HeatmapDiffusion` predicts the clean gaze heatmap x0 from a noisy one, conditioned on the person (scene
image, head channel, face crop). The noise process is :class:`~gazelab.gcdr.schedule.DiffusionSchedule`; the
model holds it as a plain attribute (recomputed from the config, never stored in a state dict).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from torch import Tensor, nn

from gazelab.gcdr.conditioning import FEATURES, ContextEncoder, SimpleEncoder, VATEncoder
from gazelab.gcdr.schedule import DiffusionSchedule
from gazelab.gcdr.unet import DenoisingUNet


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
        if (config.encoder_direction or config.encoder_fine) and config.encoder != "simple":
            raise ValueError("encoder_direction and encoder_fine need the simple encoder (encoder: simple)")
        if config.encoder == "vat":
            encoder, features = VATEncoder(), FEATURES
        elif config.encoder == "simple":
            encoder = SimpleEncoder(config.encoder_channels, direction=config.encoder_direction)
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

    def context(self, scene: Tensor, head: Tensor, face: Tensor) -> list[Tensor]:
        """The per-level context maps of a batch of people (computed once per refinement, reused every step)."""
        return self.conditioning(scene, head, face)

    def gaze_direction(self, face: Tensor) -> Tensor | None:
        """The encoder's gaze directions [N, 2] from face crops, for its auxiliary loss (None: it has none)."""
        reader = getattr(self.conditioning.encoder, "gaze_direction", None)
        return None if reader is None else reader(face)

    def denoise(self, x_t: Tensor, t: Tensor, context: list[Tensor]) -> Tensor:
        """x_t in [0, 1] [N, 1, 64, 64] at raw timestep values ``t`` [N] -> predicted x0 [N, 1, 64, 64]."""
        return self.unet(x_t, t, context)

    def forward(self, x_t: Tensor, t: Tensor, scene: Tensor, head: Tensor, face: Tensor) -> Tensor:
        return self.denoise(x_t, t, self.context(scene, head, face))
