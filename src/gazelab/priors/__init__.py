"""Gaze priors for semi-supervised training: VQA Grad-CAM maps, simulated maps for synthetic data, and the
on-disk store every producer (``gazelab prior``, ``gazelab refine``) writes and every consumer reads.

Heavy parts (transformers, torch) live in their own modules; importing this package only brings the store.
"""

from gazelab.priors.store import PriorRecord, PriorStore, person_key

__all__ = ["PriorRecord", "PriorStore", "person_key"]
