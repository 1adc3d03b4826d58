"""Two-stream batches: a fixed number of labelled and of unlabelled samples in every batch (GCDR: 20 + 60).

An epoch is one pass over the unlabelled stream (each unlabelled sample once, shuffled); the small labelled
stream is repeated as often as needed, each repetition a fresh permutation. Indices address a
``ConcatDataset([labelled, unlabelled])``: labelled ones are ``0 .. n_labelled-1``, unlabelled ones follow.
Shuffles are seeded per (seed, epoch): Lightning calls :meth:`set_epoch`, which also tells the dataset (its
augmentation depends on the epoch). With several processes each takes every ``num_replicas``-th batch of the
same epoch order (wrapping around so all get as many batches).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import Sampler

from gazelab.errors import GazelabError


class TwoStreamBatchSampler(Sampler[list[int]]):
    """Yields index lists of ``labelled_per_batch`` labelled then ``unlabelled_per_batch`` unlabelled samples.

    The last batch may hold fewer unlabelled samples (``drop_last=False``, the default) so that every
    unlabelled sample is seen once per epoch.
    """

    def __init__(
        self,
        n_labelled: int,
        n_unlabelled: int,
        labelled_per_batch: int,
        unlabelled_per_batch: int,
        seed: int = 0,
        drop_last: bool = False,
        dataset: Any = None,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if n_labelled < 1 and labelled_per_batch > 0:
            raise GazelabError("the labelled stream is empty: check the labelled split (fraction too small?)")
        if n_unlabelled < 1 or unlabelled_per_batch < 1:
            raise GazelabError("the unlabelled stream is empty: two-stream training needs unlabelled samples")
        if labelled_per_batch < 0:
            raise GazelabError("labelled_per_batch must be at least 0")
        self.n_labelled, self.n_unlabelled = n_labelled, n_unlabelled
        self.labelled_per_batch, self.unlabelled_per_batch = labelled_per_batch, unlabelled_per_batch
        self.seed, self.drop_last, self.epoch = seed, drop_last, 0
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.dataset is not None:
            self.dataset.set_epoch(epoch)

    def _batches(self) -> int:
        ratio = self.n_unlabelled / self.unlabelled_per_batch
        return max(1, math.floor(ratio)) if self.drop_last else math.ceil(ratio)

    def __len__(self) -> int:
        return math.ceil(self._batches() / self.num_replicas)

    def _labelled_stream(self, generator: torch.Generator) -> Iterator[int]:
        while True:
            yield from torch.randperm(self.n_labelled, generator=generator).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        unlabelled = (torch.randperm(self.n_unlabelled, generator=generator) + self.n_labelled).tolist()
        labelled = self._labelled_stream(generator) if self.labelled_per_batch else iter(())
        total = self._batches()
        batches = []
        for b in range(total):
            chunk = unlabelled[b * self.unlabelled_per_batch : (b + 1) * self.unlabelled_per_batch]
            batches.append([next(labelled) for _ in range(self.labelled_per_batch)] + chunk)
        for k in range(len(self)):
            yield batches[(self.rank + k * self.num_replicas) % total]
