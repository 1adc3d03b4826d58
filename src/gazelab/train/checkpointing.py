"""What makes Lightning checkpoints safe to write and exact to resume from.

- :class:`LatestCheckpoint`: ``last.ckpt``, rewritten at the end of every epoch — what ``--ckpt_path last``
  resumes from. (``ModelCheckpoint(save_last=True)`` refreshes it only when a best-k checkpoint is saved, so a
  run that stopped improving would resume from an old epoch.)

- :class:`AtomicCheckpointIO`: Lightning writes local checkpoints through a temporary file in the system temp
  folder and *moves* it — a copy when that folder is on another disk, which an interruption can leave half
  written under the final name. This writes the temporary file beside the target and renames it.
- :class:`RandomState`: Lightning restores weights, optimiser, schedule and loop counters but not the random
  generators, so drop-path masks (and anything else drawn during training) would differ after a resume. The
  generators are saved with each checkpoint and restored when training starts again (after the sanity check,
  which must not shift them). Data order and augmentation do not depend on them (see
  :mod:`gazelab.train.data`). Exact for one process; with DDP each process gets rank 0's saved state.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import lightning.pytorch as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from gazelab.train.atomic import write_atomic


class AtomicCheckpointIO(TorchCheckpointIO):
    """Torch checkpoints written to a temporary file in the target folder, then renamed into place."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda handle: torch.save(checkpoint, handle))


class LatestCheckpoint(ModelCheckpoint):
    """Saves ``last.ckpt`` in ``dirpath`` at the end of every epoch (after validation when there is one)."""

    def __init__(self, dirpath: str | Path | None) -> None:
        super().__init__(dirpath=dirpath, filename="last", monitor=None, save_top_k=1, enable_version_counter=False)

    @property
    def state_key(self) -> str:
        # Distinct from a best-k ModelCheckpoint without a monitor, whose key would otherwise be the same.
        return type(self).__name__


class RandomState(L.Callback):
    """Saves the torch (CPU and CUDA) and Python random states in checkpoints and restores them on resume."""

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._pending is None:
            return
        torch.set_rng_state(self._pending["torch"])
        random.setstate(self._pending["python"])
        if "cuda" in self._pending and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self._pending["cuda"])
        self._pending = None
