"""Where the targets of unlabelled people come from: pluggable pseudo-label sources.

Every source answers, for one (image path, person id) key, a :class:`PseudoLabel` — a 64x64 map over the
original image in [0, 1], and an in/out estimate — or None when it has nothing usable (the person then gives
no heatmap loss). Sources only see keys and their own files, never annotations, so they cannot leak labels.

- ``raw``: the stored prior as it is (raw Grad-CAM, or a simulated prior on synthetic data);
- ``argmax``: a Gaussian (sigma 3, peak 1) at the prior's maximum — GCDR's "argmax refinement" baseline;
- ``refined``: diffusion-refined maps written by ``gazelab refine``; with several stores (K samples per
  person) each epoch picks one, seeded per (seed, epoch, key), as GCDR draws a fresh sample per iteration;
- a supervised teacher's predictions written to a store the same way (``teacher`` is ``raw`` on it).

The in/out estimate: a valid map whose maximum is positive counts as in frame (GCDR's priors are zeros for
people it deems out of frame); everything else is unknown and excluded from the heatmap loss.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from gazelab.data.targets import SIGMA, gaussian_heatmaps
from gazelab.errors import GazelabError

Mode = Literal["raw", "argmax", "refined", "teacher"]
MODES: tuple[str, ...] = ("raw", "argmax", "refined", "teacher")


@dataclass(frozen=True)
class PseudoLabel:
    """A target for one unlabelled person: ``heatmap`` [64, 64] float32 in [0, 1] over the original image."""

    heatmap: Tensor
    inout: float
    """1.0 in frame, 0.0 out of frame, -1.0 unknown (no heatmap loss)."""


class PseudoLabelSource(Protocol):
    """Anything that maps a person key to a pseudo-label; ``epoch`` lets a source vary its answer per epoch."""

    def __call__(self, image: str, person: int, epoch: int) -> PseudoLabel | None: ...


def argmax_gaussian(heatmap: Tensor, sigma: int = SIGMA) -> Tensor:
    """A peak-1 Gaussian at the map's maximum (same size), GCDR's argmax-refinement target."""
    height, width = heatmap.shape
    flat = int(heatmap.flatten().argmax())
    point = torch.tensor([[(flat % width + 0.5) / width, (flat // width + 0.5) / height]], dtype=torch.float64)
    return gaussian_heatmaps(point, size=width, sigma=sigma)[0].to(torch.float32)


class StoreSource:
    """Pseudo-labels read from one or more prior stores (see the module docstring for the modes)."""

    def __init__(self, stores: Sequence[str], mode: Mode = "raw", seed: int = 0) -> None:
        from gazelab.priors.store import PriorStore  # the store pulls in no training code; import when used

        if mode not in MODES:
            raise GazelabError(f"unknown pseudo-label mode {mode!r}; choose one of {', '.join(MODES)}")
        if not stores:
            raise GazelabError("a pseudo-label source needs at least one prior store folder")
        self.stores = [PriorStore(path) for path in stores]
        self.mode = mode
        self.seed = seed

    def _pick(self, image: str, person: int, epoch: int) -> int:
        if len(self.stores) == 1:
            return 0
        digest = hashlib.blake2b(f"{self.seed}:{epoch}:{image}:{person}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") % len(self.stores)

    def __call__(self, image: str, person: int, epoch: int) -> PseudoLabel | None:
        record = self.stores[self._pick(image, person, epoch)].get(image, person)
        if record is None or not record.valid:
            return None
        heatmap = torch.from_numpy(np.asarray(record.heatmap, dtype=np.float32)).clamp(0, 1)
        if float(heatmap.max()) <= 0:
            return PseudoLabel(heatmap, 0.0)
        if self.mode == "argmax":
            heatmap = argmax_gaussian(heatmap)
        return PseudoLabel(heatmap, 1.0)
