"""The named evaluation protocols as a torchmetrics metric, so validation runs the published scoring each epoch.

Validation batches carry ``rows``: each person's position in the validation set. The metric keeps every
person's heatmap (and in/out score) with its row; torchmetrics gathers them from all DDP processes (uneven
sizes included), and :meth:`ProtocolMetric.compute` scores them with :mod:`gazelab.eval.metrics` against the
ground truth of exactly the persons seen — so a partial pass (sanity check, ``limit_val_batches``) is scored
honestly on what it covered, and the duplicates a distributed sampler adds count once.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from gazelab.eval.metrics import EvalTargets, get_protocol


def subset_targets(targets: EvalTargets, rows: Tensor) -> EvalTargets:
    """The ground truth of the persons at ``rows`` (a CPU long tensor)."""

    def pick(t: Tensor | None) -> Tensor | None:
        return None if t is None else t[rows]

    return EvalTargets(targets.gaze[rows], pick(targets.inout), pick(targets.image_sizes), pick(targets.heads))


class ProtocolMetric(Metric):
    """Scores validation heatmaps with a named protocol (``gazefollow``, ``vat``, ...)."""

    full_state_update = False

    def __init__(self, protocol: str, targets: EvalTargets, with_inout: bool) -> None:
        super().__init__()
        self.protocol = get_protocol(protocol)
        self.targets = targets
        self.with_inout = with_inout
        self.add_state("rows", default=[], dist_reduce_fx="cat")
        self.add_state("heatmaps", default=[], dist_reduce_fx="cat")
        self.add_state("inout", default=[], dist_reduce_fx="cat")

    def update(self, rows: Tensor, heatmaps: Tensor, inout: Tensor | None) -> None:
        self.rows.append(rows)
        self.heatmaps.append(heatmaps.detach().float())
        if self.with_inout:
            self.inout.append(inout.detach().double())

    def compute(self) -> dict[str, Tensor]:
        rows = dim_zero_cat(self.rows).cpu()
        unique, first = _first_occurrence(rows)
        heatmaps = dim_zero_cat(self.heatmaps).cpu()[first]
        scores = dim_zero_cat(self.inout).cpu()[first] if self.with_inout else None
        report = self.protocol.evaluate(subset_targets(self.targets, unique), heatmaps=heatmaps, inout_scores=scores)
        values = {name: torch.tensor(value) for name, value in report.summary.items() if not math.isnan(value)}
        values["persons"] = torch.tensor(float(len(unique)))  # how many were scored: all of them, unless limited
        return values


def _first_occurrence(rows: Tensor) -> tuple[Tensor, Tensor]:
    """Sorted distinct rows and, for each, the index of one of its occurrences."""
    unique, inverse = torch.unique(rows, return_inverse=True)
    first = torch.empty_like(unique).scatter_(0, inverse, torch.arange(len(rows)))
    return unique, first
