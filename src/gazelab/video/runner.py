"""The video loop: frames in, every tracked person's answer per frame out, in frame order, streaming.

How each kind of model sees a video (its published protocol where it has one):

- Image models (Gaze-LLE, the spatial VAT/PDP models, ...): each frame alone, encoded once, every person in
  it a query on that encoding (:class:`~gazelab.infer.predictor.Predictor`). Optional per-track smoothing
  (:mod:`gazelab.video.smoothing`).
- VAT spatio-temporal (``VATTemporal``): the ConvLSTM's ``(h, c)`` is carried per track from frame to frame —
  the released evaluation walks each track in chunks of 3 frames carrying the state, which gives the same
  numbers as one frame at a time. All people of a frame go through the model as one batch. A track that
  misses a frame starts again from a zero state (the reference's sequences are contiguous track segments).
- PDP temporal (``PDPTemporal``): each track is cut into consecutive, non-overlapping 5-frame windows, each
  evaluated independently (the published protocol). A window closes when full, when its track misses a
  frame, or at the end of the video; a short window is padded by repeating its last frame and only its real
  frames are kept. Answers therefore arrive up to 4 frames late; frames wait in a small queue.

Memory is bounded whatever the video's length: the loop holds the current frame, the queue (at most one
window of frames), one prepared window per PDP track and one ``(h, c)`` per VAT track.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from gazelab.errors import GazelabError
from gazelab.infer.predictor import Predictor
from gazelab.models.base import GazeModel, GazeOutput
from gazelab.models.pdp import pdp_gaze_output
from gazelab.models.pdp_temporal import PDPTemporal
from gazelab.models.vat import VATTemporal, to_gaze_output
from gazelab.types import Box
from gazelab.video.reader import VideoFrame
from gazelab.video.smoothing import Point, TrackSmoother, argmax_point
from gazelab.video.tracks import TrackedHead, Tracks


@dataclass
class PersonResult:
    """One tracked person's answer in one frame."""

    track_id: str
    head: Box
    heatmap: np.ndarray
    """[64, 64] float32 in [0, 1]."""
    point: Point
    inout: float | None
    label: str | None = None


@dataclass
class FrameResult:
    """A processed frame with everyone's answers, in the frame's track order."""

    index: int
    time: float
    name: str
    pixels: np.ndarray
    people: list[PersonResult] = field(default_factory=list)


Answer = tuple[int, str, PersonResult]
"""(frame index, track id, answer): what a strategy hands back, possibly for an earlier frame."""


def _answers(frame: VideoFrame, heads: list[TrackedHead], output: GazeOutput) -> list[Answer]:
    heatmaps = output.heatmap.float().cpu().numpy()
    inout = output.inout.float().cpu().tolist() if output.inout is not None else [None] * len(heads)
    return [
        (frame.index, head.track_id, PersonResult(head.track_id, head.box, heatmaps[i], argmax_point(heatmaps[i]),
                                                  inout[i]))
        for i, head in enumerate(heads)
    ]  # fmt: skip


class ImageStrategy:
    """Any model, frame by frame: one encoding per frame, all its people decoded together."""

    def __init__(self, model: GazeModel, precision: str = "fp32", compile: bool = False) -> None:
        self.predictor = Predictor(model, precision=precision, compile=compile)

    def push(self, frame: VideoFrame, heads: list[TrackedHead]) -> list[Answer]:
        if not heads:  # nobody to ask: skip the costly encoding
            return []
        self.predictor.set_image(frame.pixels)
        predictions = self.predictor.predict([h.box for h in heads])
        return [
            (frame.index, h.track_id, PersonResult(h.track_id, h.box, p.heatmap, p.point, p.inout, p.label))
            for h, p in zip(heads, predictions)
        ]

    def flush(self) -> list[Answer]:
        return []


def _prepared(model: GazeModel, frame: VideoFrame, heads: list[TrackedHead]) -> tuple[Tensor, Tensor, Tensor]:
    """Per-person model inputs of a Chong-style model: scene [P, 3, 224, 224], head channel, face crop."""
    inputs = model.prepare([frame.pixels], [[h.box for h in heads]])
    people = inputs.people
    return model.encode(inputs.images)[people.image_index], people.extras["head_channel"], people.extras["faces"]


class VATStrategy:
    """VAT spatio-temporal: the ConvLSTM state carried per track, one batched step per frame."""

    def __init__(self, model: VATTemporal) -> None:
        self.model = model.eval()
        self._states: dict[str, tuple[Tensor, Tensor]] = {}

    def push(self, frame: VideoFrame, heads: list[TrackedHead]) -> list[Answer]:
        if not heads:
            self._states = {}
            return []
        scene, head, face = _prepared(self.model, frame, heads)
        lstm = self.model.convlstm_scene
        zero = lstm.zero_state(1, torch.empty(1, 1, 7, 7, device=scene.device))
        previous = [self._states.get(h.track_id, (zero[0][:, 0], zero[1][:, 0])) for h in heads]
        state = (torch.stack([s[0] for s in previous], 1), torch.stack([s[1] for s in previous], 1))
        out = self.model.run_packed(scene, head, face, [len(heads)], state)
        h_new, c_new = out.state
        # Only tracks in this frame keep a state: a track that skips a frame restarts from zeros.
        self._states = {h.track_id: (h_new[:, i], c_new[:, i]) for i, h in enumerate(heads)}
        return _answers(frame, heads, to_gaze_output(out.heatmap, out.inout_logit))

    def flush(self) -> list[Answer]:
        self._states = {}
        return []


@dataclass
class _Window:
    frames: list[VideoFrame] = field(default_factory=list)
    heads: list[TrackedHead] = field(default_factory=list)
    inputs: list[tuple[Tensor, Tensor, Tensor]] = field(default_factory=list)


class PDPWindowStrategy:
    """PDP temporal: consecutive non-overlapping windows of ``model.frames`` frames per track."""

    def __init__(self, model: PDPTemporal) -> None:
        check_video_model(model)
        self.model = model.eval()
        self._windows: dict[str, _Window] = {}

    def push(self, frame: VideoFrame, heads: list[TrackedHead]) -> list[Answer]:
        present = {h.track_id for h in heads}
        closing = [tid for tid in self._windows if tid not in present]  # a gap ends the window
        if heads:
            scene, head, face = _prepared(self.model, frame, heads)
            for i, person in enumerate(heads):
                window = self._windows.setdefault(person.track_id, _Window())
                window.frames.append(frame)
                window.heads.append(person)
                window.inputs.append((scene[i], head[i], face[i]))
        closing += [tid for tid, w in self._windows.items() if len(w.frames) == self.model.frames]
        return self._run([self._windows.pop(tid) for tid in closing])

    def flush(self) -> list[Answer]:
        windows = list(self._windows.values())
        self._windows = {}
        return self._run(windows)

    def _run(self, windows: list[_Window]) -> list[Answer]:
        """All closing windows in one batch; short ones padded with their last frame."""
        if not windows:
            return []
        size = self.model.frames
        stacked = []
        for part in range(3):
            rows = [[w.inputs[min(t, len(w.inputs) - 1)][part] for t in range(size)] for w in windows]
            stacked.append(torch.stack([torch.stack(r) for r in rows]))
        out = self.model.run_windows(*stacked)
        output = pdp_gaze_output(out.heatmap, out.patch_logits)
        answers = []
        for number, window in enumerate(windows):
            for t, (frame, person) in enumerate(zip(window.frames, window.heads)):
                rows = slice(number * size + t, number * size + t + 1)
                one = GazeOutput(output.heatmap[rows], None if output.inout is None else output.inout[rows])
                answers += _answers(frame, [person], one)
        return answers


def check_video_model(model: GazeModel) -> None:
    """Refuse, before any output is written, a model that cannot run on plain video frames."""
    if isinstance(model, PDPTemporal) and model.use_depth:
        raise GazelabError(
            "this temporal PDP model needs a depth map per frame, which gazelab cannot estimate; use vat_temporal "
            "or an image model (or, from Python, PDPTemporal(depth=False))"
        )


def strategy_for(
    model: GazeModel, precision: str = "fp32", compile: bool = False
) -> ImageStrategy | VATStrategy | PDPWindowStrategy:
    """The protocol a model runs a video with (see the module docstring). The Predictor's fast paths
    (``precision``, ``compile``) apply to frame-by-frame models; temporal models run their exact fp32 path."""
    if isinstance(model, (VATTemporal, PDPTemporal)):
        if precision != "fp32" or compile:
            raise GazelabError(f"{type(model).__name__} is temporal: --precision bf16 and --compile are for "
                               "frame-by-frame models; drop them")  # fmt: skip
        return VATStrategy(model) if isinstance(model, VATTemporal) else PDPWindowStrategy(model)
    return ImageStrategy(model, precision, compile)


@torch.inference_mode()
def run_video(
    model: GazeModel,
    frames: Iterable[VideoFrame],
    tracks: Tracks,
    smoother: TrackSmoother | None = None,
    precision: str = "fp32",
    compile: bool = False,
) -> Iterator[FrameResult]:
    """Every frame of ``frames`` with the answers for the heads ``tracks`` gives it, in frame order.

    Frames without heads come out too (with no people), so an annotated video keeps every frame.
    ``precision``/``compile``: the Predictor's fast paths, for frame-by-frame models.
    """
    strategy = strategy_for(model.eval(), precision, compile)
    queue: deque[tuple[FrameResult, list[TrackedHead]]] = deque()
    pending: dict[tuple[int, str], PersonResult] = {}

    def ready() -> Iterator[FrameResult]:
        while queue and all((queue[0][0].index, h.track_id) in pending for h in queue[0][1]):
            result, heads = queue.popleft()
            for head in heads:
                person = pending.pop((result.index, head.track_id))
                if smoother is not None:
                    smoothed = smoother(head.track_id, result.time, person.heatmap, person.inout)
                    person.heatmap, person.point, person.inout = smoothed.heatmap, smoothed.point, smoothed.inout
                result.people.append(person)
            yield result

    for frame in frames:
        heads = tracks.at(frame.index)
        queue.append((FrameResult(frame.index, frame.time, frame.name, frame.pixels), heads))
        pending.update({(index, tid): person for index, tid, person in strategy.push(frame, heads)})
        yield from ready()
    pending.update({(index, tid): person for index, tid, person in strategy.flush()})
    yield from ready()
    if queue:
        raise RuntimeError(f"frames {[r.index for r, _ in queue]} got no answers")  # a bug, not a user error
