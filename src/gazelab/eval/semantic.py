"""Semantic gaze metrics (SemGaze): *what* a person looks at, not only where.

A semantic model predicts a label embedding per person; it is compared by cosine similarity with the
embeddings of a fixed vocabulary (one per class name). Each function returns per-sample values (1.0 hit,
0.0 miss, NaN where the sample does not count) so they can sit next to the other per-person metrics; the
metric is their mean over the non-NaN samples (micro-average, as SemGaze reports it).

Training validates with :class:`SemanticMetric` (``val_acc1`` etc. next to the protocol's scores), whose targets
come from the validation people through :meth:`LabelTargets.from_people`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from gazelab.errors import GazelabError
from gazelab.eval.metrics import predicted_points
from gazelab.types import Person


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


@dataclass(frozen=True)
class LabelTargets:
    """Ground truth of the semantic metrics for N people, in the order the predictions are scored.

    ``label_ids`` [N] (-1: no label), ``label_sets`` [N, L] every acceptable label (-1: padding; GazeFollow
    test ``gaze_gt_labels``, GazeHOI ``aux_object``), ``target_boxes`` [N, 4] normalized xyxy (NaN: none).
    """

    label_ids: Tensor
    label_sets: Tensor
    target_boxes: Tensor

    @classmethod
    def from_people(cls, people: Sequence[Person], ids: Mapping[str, int]) -> LabelTargets:
        """Targets of ``people`` with label ids from ``ids`` (a vocabulary's ``vocab2id``); a label outside it
        is an error — its id would be meaningless."""
        unknown = sorted({name for p in people for name in _names(p) if name not in ids})
        if unknown:
            raise GazelabError(f"labels {unknown[:5]} of the scored people are not in the vocabulary of {len(ids)}")
        width = max([1] + [len(_names(p)) for p in people])
        sets = torch.full((len(people), width), -1, dtype=torch.long)
        for row, person in enumerate(people):
            names = _names(person)
            sets[row, : len(names)] = torch.tensor([ids[name] for name in names], dtype=torch.long)
        nan_box = (math.nan,) * 4
        boxes = [p.target_box.as_tuple() if p.target_box is not None else nan_box for p in people]
        ids_ = torch.tensor([-1 if p.label is None else ids[p.label] for p in people], dtype=torch.long)
        return cls(ids_, sets, torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4))

    def subset(self, rows: Tensor) -> LabelTargets:
        return LabelTargets(self.label_ids[rows], self.label_sets[rows], self.target_boxes[rows])


def _names(person: Person) -> tuple[str, ...]:
    """Every acceptable label of a person, its main label first (none when it has no main label)."""
    if person.label is None:
        return ()
    return (person.label, *(name for name in person.labels if name != person.label))


def semantic_summary(embeddings: Tensor, points: Tensor, targets: LabelTargets, vocabulary: Tensor) -> dict[str, float]:
    """``acc1``, ``acc3``, ``multi_acc1`` (only when someone has several acceptable labels — otherwise it is
    ``acc1``) and ``gaze_acc`` (only when someone has a target box), micro-averaged; a metric without any
    counted sample is left out rather than reported as NaN."""
    values = {
        "acc1": top_k_accuracy(embeddings, vocabulary, targets.label_ids, k=1),
        "acc3": top_k_accuracy(embeddings, vocabulary, targets.label_ids, k=3),
    }
    if bool(((targets.label_sets >= 0).sum(dim=1) > 1).any()):
        values["multi_acc1"] = multi_label_accuracy(embeddings, vocabulary, targets.label_sets)
    if bool((~targets.target_boxes.isnan().any(dim=1)).any()):
        values["gaze_acc"] = gaze_accuracy(points, targets.target_boxes)
    means = {name: float(v[~v.isnan()].mean()) if bool((~v.isnan()).any()) else math.nan for name, v in values.items()}
    return {name: value for name, value in means.items() if not math.isnan(value)}


class SemanticMetric(Metric):
    """Semantic scores of a validation pass, as :class:`~gazelab.train.metric.ProtocolMetric` for heatmaps.

    Batches carry ``rows`` (each person's position in the validation set); the metric keeps every person's
    label embedding and predicted point with its row, torchmetrics gathers them from all DDP processes, and
    :meth:`compute` scores each row once (a distributed sampler repeats some) against ``targets``.
    """

    full_state_update = False

    def __init__(self, targets: LabelTargets, vocabulary: Tensor) -> None:
        super().__init__()
        self.targets = targets
        self.vocabulary = vocabulary
        self.add_state("rows", default=[], dist_reduce_fx="cat")
        self.add_state("embeddings", default=[], dist_reduce_fx="cat")
        self.add_state("points", default=[], dist_reduce_fx="cat")

    def update(self, rows: Tensor, embeddings: Tensor, heatmaps: Tensor) -> None:
        self.rows.append(rows.to(self.device))
        self.embeddings.append(embeddings.detach().float())
        self.points.append(predicted_points(heatmaps.detach().float()))

    def compute(self) -> dict[str, Tensor]:
        rows = dim_zero_cat(self.rows).cpu()
        unique, inverse = torch.unique(rows, return_inverse=True)
        first = torch.empty_like(unique).scatter_(0, inverse, torch.arange(len(rows)))
        embeddings = dim_zero_cat(self.embeddings).cpu()[first]
        points = dim_zero_cat(self.points).cpu()[first]
        scores = semantic_summary(embeddings, points, self.targets.subset(unique), self.vocabulary.cpu())
        return {name: torch.tensor(value) for name, value in scores.items()}
