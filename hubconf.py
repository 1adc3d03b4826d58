"""torch.hub entry points: the released Gaze-LLE models by their published names.

    model = torch.hub.load("<owner>/gazelab", "gazelle_dinov2_vitb14_inout")         # from GitHub
    model = torch.hub.load("path/to/gazelab", "gazelle_dinov2_vitb14", source="local")

Unlike the reference repository's entry points, which return ``(model, transform)``, these return the model
alone: a gazelab model owns its preprocessing (``model.prepare(images, heads)``), and
``gazelab.infer.predictor.Predictor(model)`` answers for any number of people per picture. Weights are
downloaded to gazelab's cache on first use (``$GAZELAB_HOME/weights``), not to torch.hub's.
"""

import os
import sys

dependencies = ["torch", "torchvision", "numpy", "PIL"]

# torch.hub imports this file from a checkout that is not installed: make its src/ package importable.
_SRC = os.path.join(os.path.dirname(os.path.realpath(__file__)), "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)

# Private names: torch.hub.list() shows every public callable of this file as an entry point.
from gazelab.models import GazeModel as _GazeModel  # noqa: E402
from gazelab.models import create_model as _create_model  # noqa: E402


def _load(name: str, pretrained: bool, **kwargs) -> _GazeModel:
    return _create_model(name, pretrained=pretrained, **kwargs).eval()


def gazelle_dinov2_vitb14(pretrained: bool = True, **kwargs) -> _GazeModel:
    """Gaze-LLE, DINOv2 ViT-B/14 backbone, trained on GazeFollow (``pretrained=False``: random decoder and backbone).

    ``kwargs`` go to :func:`gazelab.models.create_model` (e.g. ``backbone_weights``, ``progress``).
    """
    return _load("gazelle_dinov2_vitb14", pretrained, **kwargs)


def gazelle_dinov2_vitl14(pretrained: bool = True, **kwargs) -> _GazeModel:
    """Gaze-LLE, DINOv2 ViT-L/14 backbone, trained on GazeFollow."""
    return _load("gazelle_dinov2_vitl14", pretrained, **kwargs)


def gazelle_dinov2_vitb14_inout(pretrained: bool = True, **kwargs) -> _GazeModel:
    """Gaze-LLE with the in/out head, DINOv2 ViT-B/14, fine-tuned on VideoAttentionTarget."""
    return _load("gazelle_dinov2_vitb14_inout", pretrained, **kwargs)


def gazelle_dinov2_vitl14_inout(pretrained: bool = True, **kwargs) -> _GazeModel:
    """Gaze-LLE with the in/out head, DINOv2 ViT-L/14, fine-tuned on VideoAttentionTarget."""
    return _load("gazelle_dinov2_vitl14_inout", pretrained, **kwargs)
