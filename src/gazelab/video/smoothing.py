"""Temporal smoothing of an image model's per-frame answers, per track (temporal models need none).

An image model sees each frame alone, so its point flickers: the heatmap's argmax hops between near-equal
peaks and moves in 1/64 steps. Two filters, both driven by the frames' *times* (not their count), so the
smoothing is the same in seconds whatever the frame rate or ``--stride``:

- ``one-euro`` (Casiez et al., CHI 2012) on the point and the in/out probability: a low-pass filter whose
  cut-off rises with the signal's speed. A still gaze is held steady (cut-off ``min_cutoff`` Hz), a saccade
  to another object is followed within a frame or two (cut-off ``+ beta * speed``) — a fixed low-pass
  filter cannot do both. The drawn heatmap stays the model's own.
- ``ema``: an exponential moving average of the heatmaps (and in/out) with time constant ``tau`` seconds; the
  point is the argmax of the averaged heatmap. Keeps heatmap and point consistent and lets a second
  candidate target build up evidence over frames instead of winning on one noisy frame; it lags saccades by
  about ``tau``.

A track's state is dropped when it has not been seen for ``reset_after`` seconds, so a returning head does
not start from where it looked long ago.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Point = tuple[float, float]
SMOOTHERS = ("none", "one-euro", "ema")


def argmax_point(heatmap: np.ndarray) -> Point:
    """The protocols' point of a heatmap: first maximum, ``(col / W, row / H)`` (as ``heatmap_argmax_point``)."""
    row, col = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return (col / heatmap.shape[1], row / heatmap.shape[0])


def _alpha(dt: float, cutoff: float) -> float:
    """Smoothing factor of a first-order low-pass filter with ``cutoff`` Hz over a step of ``dt`` seconds."""
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter of a vector signal sampled at (possibly irregular) times."""

    def __init__(self, min_cutoff: float = 0.5, beta: float = 2.0, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._time: float | None = None
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None

    def __call__(self, time: float, value: np.ndarray) -> np.ndarray:
        value = np.asarray(value, dtype=np.float64)
        if self._time is None or self._value is None or time <= self._time:
            self._time, self._value, self._speed = time, value, np.zeros_like(value)
            return value
        dt = time - self._time
        speed = (value - self._value) / dt
        a_d = _alpha(dt, self.d_cutoff)
        self._speed = a_d * speed + (1 - a_d) * self._speed
        cutoff = self.min_cutoff + self.beta * float(np.linalg.norm(self._speed))
        a = _alpha(dt, cutoff)
        self._value = a * value + (1 - a) * self._value
        self._time = time
        return self._value


@dataclass
class Smoothed:
    """One person's answer for one frame after smoothing."""

    heatmap: np.ndarray
    point: Point
    inout: float | None


class TrackSmoother:
    """Smooths each track's answers over time with the chosen filter (see the module docstring)."""

    def __init__(
        self, kind: str = "one-euro", tau: float = 0.2, min_cutoff: float = 0.5, beta: float = 2.0,
        reset_after: float = 1.0,
    ) -> None:  # fmt: skip
        if kind not in SMOOTHERS[1:]:
            raise ValueError(f"smoothing must be one of {', '.join(SMOOTHERS[1:])}, got {kind!r}")
        self.kind, self.tau, self.reset_after = kind, tau, reset_after
        self.min_cutoff, self.beta = min_cutoff, beta
        self._state: dict[str, tuple[float, object]] = {}

    def __call__(self, track_id: str, time: float, heatmap: np.ndarray, inout: float | None) -> Smoothed:
        last = self._state.get(track_id)
        if last is not None and time - last[0] > self.reset_after:
            last = None
        if self.kind == "one-euro":
            filters = last[1] if last is not None else tuple(OneEuroFilter(self.min_cutoff, self.beta) for _ in "pi")
            point = filters[0](time, np.array(argmax_point(heatmap)))  # type: ignore[index]
            if inout is not None:  # its own filter: a fast in/out change must not speed up the point's cut-off
                inout = float(filters[1](time, np.array([inout]))[0])  # type: ignore[index]
            self._state[track_id] = (time, filters)
            return Smoothed(heatmap, (float(point[0]), float(point[1])), inout)
        smoothed = np.asarray(heatmap, dtype=np.float32)
        smoothed_inout = inout
        if last is not None:
            prev_heatmap, prev_inout = last[1]  # type: ignore[misc]
            a = 1.0 - math.exp(-(time - last[0]) / self.tau)
            smoothed = (a * smoothed + (1 - a) * prev_heatmap).astype(np.float32)
            if inout is not None and prev_inout is not None:
                smoothed_inout = a * inout + (1 - a) * prev_inout
        self._state[track_id] = (time, (smoothed, smoothed_inout))
        return Smoothed(smoothed, argmax_point(smoothed), smoothed_inout)
