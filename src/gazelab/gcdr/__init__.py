"""GCDR (Miao et al., ECCV 2024): conditional heatmap diffusion model, its training, and prior refinement.

Modules import torch and diffusers; import them directly (``gazelab.gcdr.refine``, ``gazelab.gcdr.model`` ...).
"""
