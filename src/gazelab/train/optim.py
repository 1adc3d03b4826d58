"""Optimiser and learning-rate schedule of a recipe, from a few plain settings.

Recipes differ in what they need here: Gaze-LLE trains its decoder with Adam at 1e-3 and a per-epoch cosine
schedule on GazeFollow, and fine-tunes on VideoAttentionTarget with two parameter groups (names containing
``inout`` at 1e-2, the rest at 1e-5). PDP trains with Adam at 2.5e-4 (``qkv`` at half) and divides the rate
by 5 at fixed epochs (``multistep``). Groups are chosen by a substring of the parameter name — the rule of
the reference code — so a recipe states them in YAML without knowing the module tree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from gazelab.errors import GazelabError

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
}
SCHEDULERS = ("cosine", "multistep")


def parameter_groups(
    named: Iterable[tuple[str, nn.Parameter]], lr: float, lr_groups: Mapping[str, float] | None
) -> list[dict[str, Any]]:
    """Trainable parameters split by name: the first substring of ``lr_groups`` a name contains sets its lr.

    Frozen parameters are left out (an optimiser would keep state for them). A group pattern that matches
    nothing is an error: it is almost always a typo that would silently train at the wrong rate.
    """
    lr_groups = dict(lr_groups or {})
    buckets: dict[str | None, list[nn.Parameter]] = {pattern: [] for pattern in lr_groups}
    buckets[None] = []
    for name, param in named:
        if param.requires_grad:
            buckets[next((p for p in lr_groups if p in name), None)].append(param)
    unused = [pattern for pattern in lr_groups if not buckets[pattern]]
    if unused:
        raise GazelabError(f"lr_groups {unused} match no trainable parameter name")
    groups = [{"params": buckets[p], "lr": lr_groups[p], "name": p} for p in lr_groups]
    if buckets[None]:
        groups.append({"params": buckets[None], "lr": lr, "name": "default"})
    if not groups:
        raise GazelabError("the model has no trainable parameter (is everything frozen?)")
    return groups


def build_optimizer(name: str, groups: list[dict[str, Any]], weight_decay: float) -> torch.optim.Optimizer:
    try:
        cls = OPTIMIZERS[name]
    except KeyError:
        raise GazelabError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}") from None
    return cls(groups, weight_decay=weight_decay)


def build_scheduler(
    name: str | None,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    min_lr: float,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
) -> dict[str, Any] | None:
    """A Lightning scheduler config stepped once per epoch (as the references), or None for a constant lr.

    ``cosine`` anneals to ``min_lr`` over ``epochs``; ``multistep`` multiplies every group's rate by ``gamma``
    at each of the epochs in ``milestones``.
    """
    if name is None:
        return None
    if name not in SCHEDULERS:
        raise GazelabError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)} or null")
    if name == "multistep":
        if not milestones or list(milestones) != sorted(set(milestones)):
            raise GazelabError(f"the multistep schedule needs increasing milestones (epochs), got {list(milestones)}")
        steps = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma)
        return {"scheduler": steps, "interval": "epoch"}
    if epochs < 1:
        raise GazelabError("the cosine schedule needs trainer.max_epochs (its length in epochs)")
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=min_lr)
    return {"scheduler": cosine, "interval": "epoch"}
