"""Named evaluation protocols: the published gaze-following metrics, exactly, and which one was used.

Published numbers come from a few scripts that differ in details that move the third decimal (how the
heatmap is resized, where the positive pixels are, which samples count). Each script is a named
:class:`Protocol` here, reproduced to 1e-6 against golden outputs of the official code
(``tests/compat/test_metrics_fixtures.py``), and every :class:`MetricReport` names its protocol.

==========================  ===========================================================================
``gazefollow`` (default)    Gaze-LLE: heatmap bilinearly upsampled to the image (torch, align_corners=False);
                            one positive pixel per annotator at (min(int(x*W), W-1), min(int(y*H), H-1)).
``gazefollow-skimage``      PDP / GCDR: same positives, ``skimage.transform.resize`` (mirrored edges).
``gazefollow-64``           Sharingan / SemGaze: no resize; binary 64x64 map with a 1 at int(p*63).
``vat``                     VideoAttentionTarget (Gaze-LLE/Chong): 64x64 AUC against the 19x19 rectangle
                            standing for the sigma-3 Gaussian, L2 on in-frame samples, in/out AP over all.
``childplay``               ``vat`` plus P.Head (precision of "looking at a head"), as in Sharingan's code.
==========================  ===========================================================================

Common to all: the predicted point is the argmax of the 64x64 map (first maximum, row-major) as
``(col / 64, row / 64)`` — no +0.5 cell centre, no resize; distances are Euclidean in normalized
coordinates. Chong et al. 2020 resized with ``scipy.misc.imresize`` (uint8 quantisation); that function
no longer exists and is not emulated. AUCs are exact ROC AUCs with ties counted 1/2 (sklearn's value)
computed without sklearn, see :mod:`gazelab.eval.ranking`. Semantic metrics (Acc@k, MultiAcc@1, GazeAcc)
live in :mod:`gazelab.eval.semantic`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gazelab.data.targets import heatmap_argmax_point
from gazelab.errors import GazelabError
from gazelab.eval.ranking import average_precision, check_finite, roc_auc_dense, roc_auc_sparse, unique_positives
from gazelab.eval.resize import resize_skimage, upsample_bilinear

Progress = Callable[[int], None]
"""Called with the number of persons just finished (drives a progress bar)."""

MAX_PIXELS = 1 << 22
"""Pixels processed at once (16 MB per float32 buffer): bounds memory whatever the number and size of maps."""


@dataclass
class EvalTargets:
    """Ground truth of N persons as tensors (from frames: :func:`gazelab.eval.predictions.targets_from_frames`).

    ``gaze`` [N, K, 2] float64 normalized annotator points, rows with x < 0 are padding (the official
    scripts pad to 20 with -1). ``inout`` [N] bool, None when every target is in frame (GazeFollow test).
    ``image_sizes`` [N, 2] as (W, H) pixels, None when the images were not opened. ``heads`` [N, M, 4]
    normalized xyxy of every head in the person's frame (NaN rows = padding), for P.Head.
    """

    gaze: Tensor
    inout: Tensor | None = None
    image_sizes: Tensor | None = None
    heads: Tensor | None = None

    def __len__(self) -> int:
        return self.gaze.shape[0]

    @property
    def valid(self) -> Tensor:
        """[N, K] which annotator rows are real points."""
        return self.gaze[..., 0] >= 0

    @property
    def in_frame(self) -> Tensor:
        """[N] in frame with at least one point: the samples that AUC and L2 are defined on."""
        has_point = self.valid.any(dim=1)
        return has_point if self.inout is None else has_point & self.inout.to(torch.bool)

    @property
    def mean_point(self) -> Tensor:
        """[N, 2] mean annotator point (NaN without points): the target of ``avg_l2`` and VAT's ``l2``."""
        valid = self.valid[..., None]
        total = torch.where(valid, self.gaze, torch.zeros_like(self.gaze)).sum(dim=1)
        return total / valid.sum(dim=1)


# ---------------------------------------------------------------------------------------------- points


def predicted_points(heatmaps: Tensor) -> Tensor:
    """[N, h, w] -> [N, 2] float64 ``(col / w, row / h)`` of the first maximum in row-major order.

    NaN is refused: ``argmax`` would treat it as the maximum and silently pick its cell.
    """
    check_finite(heatmaps)
    return heatmap_argmax_point(heatmaps).to(torch.float64)


def l2_errors(points: Tensor, targets: EvalTargets) -> tuple[Tensor, Tensor]:
    """(avg_l2, min_l2) per person: distance to the mean annotator point and to the closest one (NaN if none)."""
    points = points.to(torch.float64)
    avg = torch.linalg.vector_norm(points - targets.mean_point, dim=1)
    each = torch.linalg.vector_norm(points[:, None, :] - targets.gaze, dim=2)
    each = torch.where(targets.valid, each, torch.full_like(each, math.inf)).min(dim=1).values
    return avg, torch.where(torch.isinf(each), torch.full_like(each, math.nan), each)


# ------------------------------------------------------------------------------------------------- AUC


def _chunks(n: int, rows: int) -> list[slice]:
    rows = max(rows, 1)
    return [slice(i, min(i + rows, n)) for i in range(0, n, rows)]


def _float_maps(heatmaps: Tensor) -> Tensor:
    """Half-precision maps are evaluated in float32; float32/float64 stay as they are (ties depend on it)."""
    return heatmaps if heatmaps.dtype in (torch.float32, torch.float64) else heatmaps.to(torch.float32)


def gazefollow_auc(
    heatmaps: Tensor,
    targets: EvalTargets,
    resize: Callable[[Tensor, tuple[int, int]], Tensor] = upsample_bilinear,
    progress: Progress | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Tensor:
    """Per-person AUC at image resolution (``gazefollow`` / ``gazefollow-skimage`` protocols).

    Persons are grouped by image size so maps of one size are resized together; groups are cut so at most
    ``max_pixels`` upsampled pixels exist at a time. Positives (float64, as the reference's Python floats):
    (min(int(x*W), W-1), min(int(y*H), H-1)) per annotator, repeated pixels counted once.
    """
    if targets.image_sizes is None:
        raise ValueError("gazefollow_auc needs targets.image_sizes (the AUC is computed at image resolution)")
    heatmaps = _float_maps(heatmaps)
    result = torch.full((len(targets),), math.nan, dtype=torch.float64)
    sizes = [tuple(size) for size in targets.image_sizes.tolist()]
    gaze = targets.gaze.to(torch.float64).cpu()
    valid = targets.valid.cpu()
    scored = sorted(torch.nonzero(targets.in_frame.cpu()).flatten().tolist(), key=sizes.__getitem__)
    for (width, height), members in itertools.groupby(scored, key=sizes.__getitem__):
        members = list(members)
        for part in _chunks(len(members), max_pixels // (width * height)):
            index = torch.tensor(members[part])
            x = torch.clamp(torch.floor(gaze[index, :, 0] * width), max=width - 1).to(torch.int64)
            y = torch.clamp(torch.floor(gaze[index, :, 1] * height), max=height - 1).to(torch.int64)
            pixel = unique_positives(torch.where(valid[index], y * width + x, -1)).to(heatmaps.device)
            maps = resize(heatmaps[index.to(heatmaps.device)], (height, width)).flatten(1)
            result[index] = roc_auc_sparse(maps, pixel).cpu()
            if progress is not None:
                progress(len(index))
    if progress is not None:
        progress(len(targets) - len(scored))
    return result


def _dense_auc(heatmaps: Tensor, positives: Tensor, rows: Tensor, progress: Progress | None, max_pixels: int) -> Tensor:
    """AUC of the listed ``rows`` of 64x64 maps with pixel indices ``positives`` [len(rows), K] (NaN elsewhere)."""
    result = torch.full((heatmaps.shape[0],), math.nan, dtype=torch.float64)
    pixels = heatmaps.shape[1] * heatmaps.shape[2]
    for part in _chunks(len(rows), max_pixels // pixels):
        index = rows[part]
        maps = heatmaps[index.to(heatmaps.device)].flatten(1)
        result[index] = roc_auc_dense(maps, positives[part].to(maps.device)).cpu()
        if progress is not None:
            progress(len(index))
    if progress is not None:
        progress(heatmaps.shape[0] - len(rows))
    return result


def gazefollow64_auc(
    heatmaps: Tensor, targets: EvalTargets, progress: Progress | None = None, max_pixels: int = MAX_PIXELS
) -> Tensor:
    """Per-person AUC of Sharingan/SemGaze (``gazefollow-64``): no resize, a 1 at (int(x*63), int(y*63)).

    Their code calls torchmetrics ``binary_auroc`` per person, which applies a sigmoid to a map with values
    outside [0, 1]; that is emulated (in the map's dtype) because the sigmoid merges near-equal float values
    into ties and so changes the AUC of un-squashed maps (SemGaze's have no sigmoid). torchmetrics computes
    the curve in float32; the exact values here differ from its output by float32 rounding (~1e-7).
    """
    _, h, w = heatmaps.shape
    rows = torch.nonzero(targets.in_frame.cpu()).flatten()
    gaze = targets.gaze.to(torch.float64).cpu()[rows]
    x = torch.floor(gaze[..., 0] * (w - 1)).to(torch.int64).clamp(0, w - 1)
    y = torch.floor(gaze[..., 1] * (h - 1)).to(torch.int64).clamp(0, h - 1)
    pixel = torch.where(targets.valid.cpu()[rows], y * w + x, -1)
    maps = _float_maps(heatmaps)
    outside = ((maps < 0) | (maps > 1)).flatten(1).any(dim=1)
    if bool(outside.any()):
        maps = maps.clone()
        maps[outside] = maps[outside].sigmoid()
    return _dense_auc(maps, unique_positives(pixel), rows, progress, max_pixels)


def vat_auc(
    heatmaps: Tensor, targets: EvalTargets, progress: Progress | None = None, max_pixels: int = MAX_PIXELS
) -> Tensor:
    """Per-sample VideoAttentionTarget AUC on the 64x64 map, in-frame samples only (NaN elsewhere).

    Positives: x in [max(0, int(g*64 - 9)), min(int(g*64 + 10), 63)), same for y, end exclusive — Gaze-LLE's
    ``vat_auc`` (the support of the sigma-3 target Gaussian; row/column 63 is never positive). ``g`` is the
    mean annotator point (VAT has one).
    """
    _, h, w = heatmaps.shape
    rows = torch.nonzero(targets.in_frame.cpu()).flatten()
    point = targets.mean_point.to(torch.float64).cpu()[rows] * torch.tensor([w, h], dtype=torch.float64)
    low = torch.clamp(torch.trunc(point - 9), min=0).to(torch.int64)
    high = torch.minimum(torch.trunc(point + 10), torch.tensor([w - 1, h - 1], dtype=torch.float64)).to(torch.int64)
    offset = torch.arange(19)
    x = low[:, 0:1] + offset  # [R, 19] candidate columns, kept where < high
    y = low[:, 1:2] + offset
    inside = (y < high[:, 1:2])[:, :, None] & (x < high[:, 0:1])[:, None, :]
    pixel = torch.where(inside, y[:, :, None] * w + x[:, None, :], -1).flatten(1)
    return _dense_auc(_float_maps(heatmaps), pixel, rows, progress, max_pixels)


# --------------------------------------------------------------------------------------------- P.Head


def looks_at_head(points: Tensor, heads: Tensor) -> Tensor:
    """[N] whether each point [N, 2] lies inside (borders included) any of its heads [N, M, 4] (NaN = padding)."""
    x, y = points[:, None, 0], points[:, None, 1]
    inside = (x >= heads[..., 0]) & (x <= heads[..., 2]) & (y >= heads[..., 1]) & (y <= heads[..., 3])
    return inside.any(dim=1)


def p_head_hits(points: Tensor, targets: EvalTargets) -> Tensor:
    """Per-sample terms of P.Head: 1/0 whether the GT point is on a head, for in-frame samples whose
    *predicted* point is on a head; NaN otherwise. The mean is P.Head.

    This is precision (Sharingan's ``PLAH``, from ChildPlay's authors): among in-frame predictions that land
    on a head, how many are right to. ``heads`` lists every head box of the frame, the person's own included.
    """
    if targets.heads is None:
        raise GazelabError("P.Head needs the head boxes of every person in the frame")
    heads = targets.heads.to(torch.float64)
    predicted = looks_at_head(points.to(torch.float64), heads)
    actual = looks_at_head(targets.mean_point, heads)
    use = targets.in_frame & predicted
    return torch.where(use, actual.to(torch.float64), torch.full_like(points[:, 0], math.nan, dtype=torch.float64))


# ------------------------------------------------------------------------------------------- protocols


@dataclass
class MetricReport:
    """Result of one protocol on N persons: per-person values (NaN where a metric does not apply), their
    means, dataset-level values (AP) and notes on what could not be computed."""

    protocol: str
    per_sample: dict[str, np.ndarray]
    summary: dict[str, float]
    counts: dict[str, int]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (per-sample arrays are left to the caller's CSV)."""

        def clean(v: float) -> float | None:
            return None if math.isnan(v) else v

        return {
            "protocol": self.protocol,
            "description": get_protocol(self.protocol).description,
            "metrics": {k: clean(v) for k, v in self.summary.items()},
            "counts": dict(self.counts),
            "notes": list(self.notes),
        }

    def markdown(self, title: str = "") -> str:
        """A one-row markdown table of the summary (``n/a`` for metrics that could not be computed)."""
        names = list(self.summary)
        cells = ["n/a" if math.isnan(self.summary[k]) else f"{self.summary[k]:.4f}" for k in names]
        head = ["", "protocol", *names, "persons"]
        row = [title, self.protocol, *cells, str(self.counts.get("persons", 0))]
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head), "| " + " | ".join(row) + " |"])


AucFunction = Callable[[Tensor, EvalTargets, "Progress | None"], Tensor]


@dataclass(frozen=True)
class Protocol:
    """One published evaluation script: which AUC, which distances, whether in/out AP and P.Head count."""

    name: str
    description: str
    auc: AucFunction
    metrics: tuple[str, ...]
    needs_image_size: bool = False

    def evaluate(
        self,
        targets: EvalTargets,
        heatmaps: Tensor | None = None,
        points: Tensor | None = None,
        inout_scores: Tensor | None = None,
        progress: Progress | None = None,
    ) -> MetricReport:
        """Score predictions for ``targets``. Give ``heatmaps`` [N, 64, 64] (AUC; points default to their
        argmax) and/or ``points`` [N, 2] (normalized; distances only) and, for ``ap``, ``inout_scores`` [N].
        Metrics whose inputs are missing are reported as NaN with a note, never guessed.
        """
        n = len(targets)
        notes: list[str] = []
        if points is None and heatmaps is not None:
            points = predicted_points(heatmaps)
        nan = torch.full((n,), math.nan, dtype=torch.float64)
        values: dict[str, Tensor] = {}
        if "auc" in self.metrics:
            if heatmaps is None:
                notes.append("auc: no heatmaps given")
                values["auc"] = nan
            else:
                if self.needs_image_size and targets.image_sizes is None:
                    raise missing_image_sizes(self.name)
                values["auc"] = self.auc(heatmaps, targets, progress)
        if points is None:
            notes.append("distances: no predicted points or heatmaps given")
        in_frame = targets.in_frame.cpu()
        points = points.to(torch.float64).cpu() if points is not None else None
        if "avg_l2" in self.metrics or "l2" in self.metrics:
            avg, best = l2_errors(points, targets) if points is not None else (nan, nan)
            avg, best = torch.where(in_frame, avg, nan), torch.where(in_frame, best, nan)
            if "l2" in self.metrics:
                values["l2"] = avg
            else:
                values["avg_l2"], values["min_l2"] = avg, best
        if "p_head" in self.metrics:
            if points is None or targets.heads is None:
                notes.append("p_head: needs predicted points and normalized head boxes (image sizes)")
                values["p_head"] = nan
            else:
                values["p_head"] = p_head_hits(points, targets)
        summary = {k: _nanmean(v) for k, v in values.items()}
        counts = {"persons": n, "in_frame": int(in_frame.sum())}
        counts.update({f"scored_{k}": int((~torch.isnan(v)).sum()) for k, v in values.items()})
        if "ap" in self.metrics:
            summary["ap"] = self._ap(targets, inout_scores, notes, counts)
        per_sample = {k: v.numpy() for k, v in values.items()}
        return MetricReport(self.name, per_sample, summary, counts, notes)

    @staticmethod
    def _ap(targets: EvalTargets, scores: Tensor | None, notes: list[str], counts: dict[str, int]) -> float:
        if scores is None:
            notes.append("ap: no in/out scores given")
            return math.nan
        if targets.inout is None:
            notes.append("ap: the annotations have no in/out labels")
            return math.nan
        counts["scored_ap"] = len(targets)
        return average_precision(scores.cpu(), targets.inout.cpu())


def _nanmean(values: Tensor) -> float:
    kept = values[~torch.isnan(values)]
    return float(kept.mean()) if kept.numel() else math.nan


def missing_image_sizes(protocol: str) -> GazelabError:
    return GazelabError(
        f"protocol '{protocol}' computes its AUC on the heatmap resized to each original image, but the image "
        "sizes are unknown (images not found) — pass --root to the dataset folder with the images, or use "
        "--protocol gazefollow-64 (no resize); distances (L2) do not need images"
    )


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            "gazefollow",
            "GazeFollow test, Gaze-LLE script: AUC on the heatmap bilinearly upsampled to the image (torch, "
            "align_corners=False), one positive pixel per annotator; avg/min L2 of the argmax point",
            lambda h, t, p: gazefollow_auc(h, t, upsample_bilinear, p),
            ("auc", "avg_l2", "min_l2"),
            needs_image_size=True,
        ),
        Protocol(
            "gazefollow-skimage",
            "GazeFollow test, PDP/GCDR script: as gazefollow but resized with skimage.transform.resize "
            "(order 1, mirrored edges)",
            lambda h, t, p: gazefollow_auc(h, t, resize_skimage, p),
            ("auc", "avg_l2", "min_l2"),
            needs_image_size=True,
        ),
        Protocol(
            "gazefollow-64",
            "GazeFollow test, Sharingan/SemGaze script: AUC on the 64x64 map against a binary map with a 1 "
            "at int(p*63) per annotator (no resize); avg/min L2",
            gazefollow64_auc,
            ("auc", "avg_l2", "min_l2"),
        ),
        Protocol(
            "vat",
            "VideoAttentionTarget, Gaze-LLE/Chong script: 64x64 AUC against the 19x19 rectangle around the "
            "target and L2 on in-frame samples, in/out AP over all samples",
            vat_auc,
            ("auc", "l2", "ap"),
        ),
        Protocol(
            "childplay",
            "ChildPlay: the vat protocol plus P.Head (precision of looking at a head, Sharingan's PLAH)",
            vat_auc,
            ("auc", "l2", "ap", "p_head"),
        ),
    )
}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; a :class:`GazelabError` listing the known names otherwise."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise GazelabError(f"unknown protocol '{name}' — choose one of: {', '.join(PROTOCOLS)}") from None
