"""Shared benchmark helpers: how much work a call is, and how fast this machine can do that work at best.

A latency alone says little across machines. Next to the *matmul-bound floor* — the call's FLOPs divided by
the machine's measured rate on large matrix products, the fastest kernel it has — it says how much of the
hardware the code uses. Transformers spend nearly all their FLOPs in matmuls, so the floor is close to a real
lower bound.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work, so wall-clock times cover it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(call: Callable[[], object]) -> int:
    """FLOPs of one ``call()`` (matmuls, convolutions and attention, multiply-add = 2), counted by PyTorch."""
    with FlopCounterMode(display=False) as counter:
        call()
    return counter.get_total_flops()


def times_ms(
    call: Callable[[], object], repeats: int, device: torch.device | str = "cpu", warmup: int = 1
) -> list[float]:
    """Wall-clock milliseconds of ``repeats`` runs of ``call()``, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def gemm_flops_per_second(
    size: int = 2048, repeats: int = 10, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> float:
    """Best rate of ``size`` x ``size`` matrix products (``2 size^3`` FLOPs each) over ``repeats`` runs.

    The best run, not the median: the floor is meant to be optimistic. 2048 is large enough for the BLAS to
    reach its peak on CPUs and small GPUs; pass more on big GPUs.
    """
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    torch.mm(a, b)
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best
