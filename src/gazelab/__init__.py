"""gazelab: gaze target estimation — models, exact evaluation, semi-supervised training, fast inference."""

from gazelab.types import Box, Frame, GazePrediction, Person

__all__ = ["Box", "Frame", "GazePrediction", "Person", "__version__"]
__version__ = "0.1.0"
