"""The semi-supervised part of a training recipe (``data.semisup`` in YAML) and how it builds the streams."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from torch.utils.data import ConcatDataset, Dataset

from gazelab.data.dataset import SampleConfig
from gazelab.data.splits import split_frames
from gazelab.errors import GazelabError
from gazelab.semisup.dataset import PseudoLabelledImageDataset, PseudoLabelledPersonDataset
from gazelab.semisup.hide import hide_labels
from gazelab.semisup.sources import MODES, StoreSource
from gazelab.types import Frame


@dataclass
class SemiSupervision:
    """Two-stream training: labelled people with their Gaussians, unlabelled people with pseudo-labels.

    The labelled part is ``data.train``: the whole file when ``unlabelled`` names the unlabelled file (as
    written by ``gazelab split``), or its ``labelled_fraction`` of images (seeded per-image split) when the
    file holds both. Unlabelled frames are read, then stripped of every label before anything else sees them.
    ``mode: none`` trains on the labelled part alone (the supervised-only baseline of the same split).
    """

    unlabelled: str | None = None
    labelled_fraction: float | None = None
    split_seed: int = 0
    pseudo_labels: list[str] = field(default_factory=list)
    """Prior store folders; several stores of ``refined`` maps are K samples per person, one drawn per epoch."""
    mode: str = "refined"
    """``raw`` (prior as target), ``argmax`` (Gaussian at its peak), ``refined`` / ``teacher`` (stored maps as
    they are), or ``none`` (no unlabelled stream)."""
    labelled_per_batch: int = 20
    unlabelled_per_batch: int = 60

    def validate(self) -> SemiSupervision:
        if self.mode not in (*MODES, "none"):
            raise GazelabError(f"data.semisup.mode {self.mode!r}: choose one of {', '.join((*MODES, 'none'))}")
        if (self.unlabelled is None) == (self.labelled_fraction is None):
            raise GazelabError("data.semisup needs exactly one of unlabelled (a file) and labelled_fraction")
        if self.mode != "none" and not self.pseudo_labels:
            raise GazelabError(f"data.semisup.mode {self.mode}: list the prior store folders in pseudo_labels")
        if self.labelled_per_batch < 0 or self.unlabelled_per_batch < 1:
            raise GazelabError("data.semisup: labelled_per_batch >= 0 and unlabelled_per_batch >= 1 are needed")
        return self

    def split(self, train: Sequence[Frame], read_unlabelled: Callable[[str], Sequence[Frame]]) -> tuple[list, list]:
        """(labelled frames, unlabelled frames with labels hidden)."""
        if self.labelled_fraction is not None:
            labelled, rest = split_frames(train, self.labelled_fraction, self.split_seed)
        else:
            labelled, rest = list(train), list(read_unlabelled(self.unlabelled))
        if not labelled:
            raise GazelabError("data.semisup: the labelled part is empty — raise labelled_fraction")
        return labelled, hide_labels(rest)

    def unlabelled_dataset(self, frames: Sequence[Frame], sampling: str, config: SampleConfig, seed: int) -> Dataset:
        source = StoreSource(self.pseudo_labels, mode=self.mode, seed=seed)
        kind = PseudoLabelledImageDataset if sampling == "image" else PseudoLabelledPersonDataset
        return kind(frames, source, config)


class TwoStreamDataset(ConcatDataset):
    """``ConcatDataset([labelled, unlabelled])`` that passes the epoch on to both (their augmentation uses it)."""

    def set_epoch(self, epoch: int) -> None:
        for dataset in self.datasets:
            dataset.set_epoch(epoch)
