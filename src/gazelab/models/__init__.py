"""Gaze models behind one interface, the model zoo, and checkpoint loading.

>>> from gazelab.models import create_model
>>> model = create_model("gazelle_dinov2_vitb14_inout", pretrained=True)  # downloads on first use
"""

from gazelab.models.base import GazeModel, GazeOutput, ModelInput, People
from gazelab.models.checkpoints import CheckpointError, WeightFile, weights_home
from gazelab.models.registry import MODEL_ZOO, create_model, get_model_spec, list_models

__all__ = [
    "MODEL_ZOO",
    "CheckpointError",
    "GazeModel",
    "GazeOutput",
    "ModelInput",
    "People",
    "WeightFile",
    "create_model",
    "get_model_spec",
    "list_models",
    "weights_home",
]
