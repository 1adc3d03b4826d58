"""Semi-supervised training (GCDR): labelled + unlabelled streams, pseudo-label sources, the student recipe.

The unlabelled side never sees ground truth: frames pass through :func:`hide_labels` before any dataset,
sampler or pseudo-label source touches them, and targets of unlabelled people come from a
:class:`PseudoLabelSource` keyed by (image path, person id).
"""

from gazelab.semisup.hide import hide_labels
from gazelab.semisup.sampler import TwoStreamBatchSampler
from gazelab.semisup.sources import PseudoLabel, PseudoLabelSource, StoreSource

__all__ = ["PseudoLabel", "PseudoLabelSource", "StoreSource", "TwoStreamBatchSampler", "hide_labels"]
