"""Semantic gaze metrics (SemGaze): *what* a person looks at, not only where.

A semantic model predicts a label embedding per person; it is compared by cosine similarity with the
embeddings of a fixed vocabulary (one per class name). Each function returns per-sample values (1.0 hit,
0.0 miss, NaN where the sample does not count) so they can sit next to the other per-person metrics; the
metric is their mean over the non-NaN samples (micro-average, as SemGaze reports it).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _top_labels(embeddings: Tensor, vocabulary: Tensor, k: int) -> Tensor:
    """[N, k] vocabulary ids of highest cosine similarity (embeddings [N, D], vocabulary [V, D])."""
    similarity = F.normalize(embeddings.to(torch.float32), dim=-1) @ F.normalize(vocabulary.to(torch.float32), dim=-1).T
    return similarity.topk(min(k, vocabulary.shape[0]), dim=1).indices


def _hits(hit: Tensor, counts: Tensor) -> Tensor:
    return torch.where(counts, hit.to(torch.float64), torch.full(hit.shape, math.nan, dtype=torch.float64))


def top_k_accuracy(embeddings: Tensor, vocabulary: Tensor, label_ids: Tensor, k: int = 1) -> Tensor:
    """Acc@k per sample: the GT label id is among the k most similar vocabulary entries; id -1 = no label
    (the sample is ignored, NaN)."""
    top = _top_labels(embeddings, vocabulary, k)
    label_ids = label_ids.to(top.device)
    hit = (top == label_ids[:, None]).any(dim=1)
    return _hits(hit.cpu(), (label_ids >= 0).cpu())


def multi_label_accuracy(embeddings: Tensor, vocabulary: Tensor, label_sets: Tensor) -> Tensor:
    """MultiAcc@1 per sample (GazeFollow test): the top-1 label is any of the GT labels ``label_sets``
    [N, L] (up to 5 per person, -1 = padding); a sample without any label is NaN."""
    top = _top_labels(embeddings, vocabulary, 1)
    label_sets = label_sets.to(top.device)
    hit = ((label_sets == top) & (label_sets >= 0)).any(dim=1)
    return _hits(hit.cpu(), (label_sets >= 0).any(dim=1).cpu())


def gaze_accuracy(points: Tensor, target_boxes: Tensor) -> Tensor:
    """GazeAcc per sample (GazeHOI): the predicted point [N, 2] lies inside (borders included) the GT
    object box [N, 4] (normalized xyxy); a NaN box (no object) gives NaN."""
    points, boxes = points.to(torch.float64), target_boxes.to(torch.float64)
    x, y = points[:, 0], points[:, 1]
    hit = (x >= boxes[:, 0]) & (x <= boxes[:, 2]) & (y >= boxes[:, 1]) & (y <= boxes[:, 3])
    return _hits(hit, ~torch.isnan(boxes).any(dim=1))
