"""Image backbones: frozen feature extractors that the gaze decoders read from."""

from gazelab.models.backbones.dinov2 import DINOV2_CONFIGS, DinoV2, DinoV2Config

__all__ = ["DINOV2_CONFIGS", "DinoV2", "DinoV2Config"]
