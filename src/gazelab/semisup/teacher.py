"""A supervised teacher's predictions as pseudo-labels: the "VAT teacher" baseline of GCDR.

A model trained on the labelled part predicts a heatmap for every unlabelled person; the maps go into a prior
store like any other pseudo-label, so the student reads them through the same :class:`StoreSource`
(``mode: teacher``). A person the teacher places out of frame (in/out probability below 0.5) gets a zero
map, which the source turns into "out of frame". Resumable: people already in the store are skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from gazelab.eval.evaluate import predict_frames
from gazelab.models.base import GazeModel
from gazelab.priors.store import PriorRecord, PriorStore, person_key
from gazelab.semisup.hide import hide_labels
from gazelab.types import Frame


def write_teacher_store(
    model: GazeModel,
    frames: Sequence[Frame],
    out: str | Path,
    batch_size: int = 8,
    device: str = "cpu",
    chunk: int = 64,
    progress: Callable[[int], None] | None = None,
) -> PriorStore:
    """Predict every person of ``frames`` (labels hidden first) and append the maps to the store at ``out``."""
    store = PriorStore(out, create=True, meta={"kind": "teacher", "model": type(model).__name__})
    done = store.keys()
    todo = [f for f in hide_labels(frames) if any(person_key(f, i) not in done for i in range(len(f.people)))]
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        predictions = predict_frames(model, part, batch_size=batch_size, device=device)
        records, row = [], 0
        for frame in part:
            for i in range(len(frame.people)):
                heatmap = predictions.heatmaps[row].clamp(0, 1)
                if predictions.inout is not None and float(predictions.inout[row]) < 0.5:
                    heatmap = torch.zeros_like(heatmap)
                records.append(PriorRecord(*person_key(frame, i), heatmap.numpy().astype(np.float16)))
                row += 1
        store.write(records)
        if progress is not None:
            progress(row)
    return store
