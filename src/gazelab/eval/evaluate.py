"""Model x dataset -> per-person heatmaps and in/out scores, ready for any protocol.

Each image is read and encoded once and all its people are decoded together (the multi-person design of
every gazelab model); images are batched. The rows come out in :func:`gazelab.eval.predictions.person_keys`
order — the order of :func:`targets_from_frames` — so a protocol can score them directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from gazelab.errors import GazelabError
from gazelab.io import load_image
from gazelab.models.base import GazeModel
from gazelab.types import Frame


@dataclass
class ModelPredictions:
    heatmaps: Tensor
    """[N, 64, 64] float32 on the CPU, one row per person."""
    inout: Tensor | None
    """[N] probability of the target being in the frame; None for models without an in/out head."""


@torch.inference_mode()
def predict_frames(
    model: GazeModel,
    frames: Sequence[Frame],
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> ModelPredictions:
    """Run ``model`` on every person of every frame (frames need their images and normalized head boxes)."""
    missing = next((f for f in frames for p in f.people if p.head is None), None)
    if missing is not None:
        raise GazelabError(
            f"{missing.image_path}: a person has no normalized head box (image not found?) — "
            "evaluating a model needs the images: pass --root to the dataset folder"
        )
    model = model.to(device).eval()
    heatmaps: list[Tensor] = []
    inout: list[Tensor] = []
    has_inout = True
    for start in range(0, len(frames), batch_size):
        batch = frames[start : start + batch_size]
        todo = [f for f in batch if f.people]
        if todo:
            images = [load_image(f.image_path) for f in todo]
            heads = [[p.head for p in f.people] for f in todo]
            inputs = model.prepare(images, heads)
            output = model(inputs.to(device))
            heatmaps.append(output.heatmap.float().cpu())
            if output.inout is None:
                has_inout = False
            else:
                inout.append(output.inout.float().cpu())
        if progress is not None:
            progress(sum(len(f.people) for f in batch))
    empty = torch.zeros(0, 64, 64)
    return ModelPredictions(
        heatmaps=torch.cat(heatmaps) if heatmaps else empty,
        inout=torch.cat(inout) if has_inout and inout else None,
    )
