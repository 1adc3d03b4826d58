"""Pseudo-labels for a prior store: each person's prior refined by :class:`~gazelab.gcdr.refine.Refiner`.

A person whose prior is missing or marked invalid gets an invalid record (no target); an all-zero prior (the
person looks outside the frame) stays all zeros. Everything else is refined, conditioned on the full image and
the person's head box, with a seed made from (run seed, image, person) — so a person's pseudo-label is the same
whichever batch, shard or resumed run produces it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from gazelab.gcdr.refine import RefineConfig, Refiner, sample_seed
from gazelab.io import load_image
from gazelab.priors.store import SIZE, PriorRecord, PriorStore, person_key
from gazelab.types import Box, Frame

Item = tuple[Frame, int]


def _head(frame: Frame, index: int, width: int, height: int) -> tuple[float, float, float, float]:
    person = frame.people[index]
    if person.head is not None:
        return person.head.clamp().as_tuple()
    if person.head_px is not None:
        return Box.from_pixels(*person.head_px, width=width, height=height).clamp().as_tuple()
    return (math.nan,) * 4


class PseudoLabeller:
    """Callable on a batch of (frame, person index) -> refined :class:`PriorRecord` s (for ``run_job``)."""

    def __init__(self, refiner: Refiner, priors: PriorStore, seed: int) -> None:
        self.refiner = refiner
        self.priors = priors
        self.seed = seed

    @staticmethod
    def meta(config: RefineConfig, seed: int, weights: str | Path, priors: PriorStore) -> dict[str, Any]:
        """What a refined store records about how it was made (a resumed run must match it)."""
        return {
            "kind": "refined",
            "weights": Path(weights).name,
            "t_start": config.t_start,
            "steps": config.steps,
            "samples": config.samples,
            "eta": config.eta,
            "from_noise": config.from_noise,
            "seed": seed,
            "priors": priors.meta,
        }

    def __call__(self, items: Sequence[Item]) -> list[PriorRecord]:
        records: list[PriorRecord | None] = [None] * len(items)
        work: list[tuple[int, str, int, np.ndarray]] = []
        empty = np.zeros((SIZE, SIZE), dtype=np.float32)
        for row, (frame, index) in enumerate(items):
            image, person = person_key(frame, index)
            prior = self.priors.get(image, person)
            if prior is None or not prior.valid:
                records[row] = PriorRecord(image, person, empty, valid=False)
            elif not self.refiner.config.from_noise and float(prior.heatmap.max()) <= 0:
                records[row] = PriorRecord(image, person, empty)
            else:
                work.append((row, image, person, np.asarray(prior.heatmap, dtype=np.float32)))
        if work:
            seeds = [sample_seed(self.seed, image, person) for _, image, person, _ in work]
            maps = self._refine([items[row] for row, *_ in work], np.stack([w[3] for w in work]), seeds)
            for (row, image, person, _), heatmap in zip(work, maps):
                records[row] = PriorRecord(image, person, heatmap)
        return [r for r in records if r is not None]

    def _refine(self, items: Sequence[Item], priors: np.ndarray, seeds: list[int]) -> np.ndarray:
        pictures, boxes, loaded = [], [], {}
        for frame, index in items:
            if frame.path not in loaded:
                loaded[frame.path] = TF.pil_to_tensor(load_image(frame.image_path))
            picture = loaded[frame.path]
            pictures.append(picture)
            boxes.append(_head(frame, index, picture.shape[-1], picture.shape[-2]))
        inputs = self.refiner.model.prepare(pictures, torch.tensor(boxes, dtype=torch.float32))
        refined = self.refiner(torch.from_numpy(priors), inputs, seeds)
        return refined.float().cpu().numpy()
