"""Training: one Lightning stack for every model family (see docs/training.md).

- :class:`GazeModule` — a zoo model with its recipe's losses, optimiser groups and per-epoch protocol scores;
- :class:`GazeDataModule` — annotation files -> datasets -> loaders, optionally over a frozen-feature cache;
- :func:`run_training` — ``gazelab train`` (LightningCLI recipes in ``configs/``);
- :func:`export_checkpoint` — trained weights in the family's published format.

Lightning is imported only when one of these is first used, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LOSSES": "gazelab.train.losses",
    "register_loss": "gazelab.train.losses",
    "FeatureCache": "gazelab.train.cache",
    "GazeDataModule": "gazelab.train.data",
    "GazeModule": "gazelab.train.module",
    "export_checkpoint": "gazelab.train.export",
    "official_state_dict": "gazelab.train.export",
    "run_training": "gazelab.train.cli",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gazelab.train' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
