"""How good are raw priors? Score them as if they were predictions, on people that have ground truth.

This is how layers, questions and box modes are chosen: make priors for the labelled part with each setting,
then compare AUC and distances here. People without a record or with an invalid one are left out and counted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from gazelab.errors import GazelabError
from gazelab.eval.metrics import MetricReport, get_protocol
from gazelab.eval.predictions import targets_from_frames
from gazelab.priors.store import PriorStore, person_key
from gazelab.types import Frame


def score_priors(store: PriorStore, frames: Sequence[Frame], protocol: str = "gazefollow-64") -> MetricReport:
    """The protocol's metrics of the store's valid priors for the annotated people of ``frames``."""
    chosen = get_protocol(protocol)
    kept_frames: list[Frame] = []
    heatmaps: list[np.ndarray] = []
    missing = invalid = unlabelled = 0
    for frame in frames:
        kept = []
        for index, person in enumerate(frame.people):
            if not person.gaze and person.inout is not False:
                unlabelled += 1
                continue
            record = store.get(*person_key(frame, index))
            if record is None:
                missing += 1
            elif not record.valid:
                invalid += 1
            else:
                kept.append(person)
                heatmaps.append(np.asarray(record.heatmap, dtype=np.float32))
        if kept:
            kept_frames.append(frame.with_people(kept))
    if not heatmaps:
        raise GazelabError(f"{store.root}: no valid prior for any labelled person of the data — do the image paths "
                           "and person ids match (same annotation file as for `gazelab prior run`)?")  # fmt: skip
    result = chosen.evaluate(targets_from_frames(kept_frames), heatmaps=torch.from_numpy(np.stack(heatmaps)))
    result.counts.update({"no_prior": missing, "invalid_prior": invalid, "unlabelled": unlabelled})
    if missing or invalid:
        result.notes.append(f"left out: {missing} people without a prior, {invalid} with an invalid one")
    return result
