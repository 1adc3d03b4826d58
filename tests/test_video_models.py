"""Models over time: VAT's state carried per track, PDP's 5-frame windows, and an image model on a synthetic
video whose gaze targets are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gazelab.errors import GazelabError
from gazelab.models.base import GazeModel, GazeOutput, People, image_tensor
from gazelab.models.pdp import pdp_gaze_output
from gazelab.models.pdp_temporal import PDPTemporal
from gazelab.models.vat import VATTemporal
from gazelab.types import Box
from gazelab.video.output import ResultWriter
from gazelab.video.reader import VideoFrame, VideoSource
from gazelab.video.runner import VATStrategy, run_video
from gazelab.video.tracks import TrackedHead, Tracks, load_tracks
from gazelab.video.writer import VideoWriter
from gazelab.viz import colour

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_frames(count: int) -> list[VideoFrame]:
    rng = np.random.default_rng(0)
    return [VideoFrame(i, i / 25, rng.integers(0, 255, (90, 120, 3), dtype=np.uint8), str(i)) for i in range(count)]


def head(track_id: str, t: int) -> TrackedHead:
    return TrackedHead(track_id, Box(0.1 + 0.02 * t, 0.1, 0.3 + 0.02 * t, 0.4) if track_id == "a" else
                       Box(0.6, 0.2 - 0.01 * t, 0.8, 0.5 - 0.01 * t))  # fmt: skip


def test_vat_state_carried_frame_by_frame_equals_one_packed_sequence() -> None:
    torch.manual_seed(0)
    model = VATTemporal().eval()
    with torch.no_grad():  # random weights give heatmaps < 0, clamped to 0; shift them to about 0.6 +- 0.1
        model.deconv_bn3.bias.fill_(0.2)
        model.conv4.weight.fill_(5.0)
    frames = random_frames(2)
    strategy = VATStrategy(model)
    with torch.inference_mode():
        answers = [strategy.push(f, [head("a", f.index), head("b", f.index)]) for f in frames]
        prepared = [model.prepare([f.pixels], [[head("a", f.index).box, head("b", f.index).box]]) for f in frames]
        scene = torch.cat([p.images[p.people.image_index] for p in prepared])
        head_maps = torch.cat([p.people.extras["head_channel"] for p in prepared])
        faces = torch.cat([p.people.extras["faces"] for p in prepared])
        packed = model.run_packed(scene, head_maps, faces, [2, 2])  # time-major: t0 a, t0 b, t1 a, t1 b
        fresh = model.run_packed(scene[2:], head_maps[2:], faces[2:], [2])  # last frame without the past
    expected = packed.heatmap[:, 0].clamp(0, 1)
    assert float(expected.std()) > 0.01 and 0 < float(expected.min()) and float(expected.max()) < 1
    for t, frame_answers in enumerate(answers):
        for k, (index, track_id, person) in enumerate(frame_answers):
            assert (index, track_id) == (t, "ab"[k])
            np.testing.assert_allclose(person.heatmap, expected[2 * t + k].numpy(), atol=1e-5)
            assert person.inout == pytest.approx(float(torch.sigmoid(packed.inout_logit[2 * t + k])), abs=1e-6)
    for k, track_id in enumerate("ab"):
        torch.testing.assert_close(strategy._states[track_id][0], packed.state[0][:, k], atol=1e-5, rtol=0)
        torch.testing.assert_close(strategy._states[track_id][1], packed.state[1][:, k], atol=1e-5, rtol=0)
    # Dropping the carried state changes the answer by 10x the tolerance used above (random LSTM: small outputs).
    assert (fresh.heatmap - packed.heatmap[2:]).abs().max() > 1e-4


def test_pdp_windows_per_track_close_when_full_on_a_gap_and_at_the_end() -> None:
    torch.manual_seed(0)
    model = PDPTemporal(depth=False, frames=2).eval()
    frames = random_frames(5)
    present = {0: "ab", 1: "a", 2: "a", 3: "a", 4: ""}  # b leaves after frame 0; a leaves after frame 3
    tracks = Tracks()
    for t, who in present.items():
        for track_id in who:
            tracks.add(t, track_id, head(track_id, t).box)
    results = list(run_video(model, frames, tracks))
    assert [r.index for r in results] == [0, 1, 2, 3, 4]
    assert [[p.track_id for p in r.people] for r in results] == [["a", "b"], ["a"], ["a"], ["a"], []]

    windows = [[("a", 0), ("a", 1)], [("a", 2), ("a", 3)], [("b", 0), ("b", 0)]]  # b's short window padded
    with torch.inference_mode():
        parts = []
        for window in windows:
            inputs = [model.prepare([frames[t].pixels], [[head(tid, t).box]]) for tid, t in window]
            parts.append([torch.cat([i.images, i.people.extras["head_channel"], i.people.extras["faces"]], 1)
                          for i in inputs])  # fmt: skip
        stacked = torch.stack([torch.cat(p) for p in parts])  # [windows, 2, 3 + 1 + 3, 224, 224]
        out = model.run_windows(stacked[:, :, :3], stacked[:, :, 3:4], stacked[:, :, 4:])
        expected = pdp_gaze_output(out.heatmap, out.patch_logits)
    got = {(r.index, p.track_id): p for r in results for p in r.people}
    for w, window in enumerate(windows):
        real = window[:1] if window[0][0] == "b" else window  # b's padding frame gives no answer
        for t, (track_id, index) in enumerate(real):
            person = got[(index, track_id)]
            np.testing.assert_allclose(person.heatmap, expected.heatmap[2 * w + t].numpy(), atol=1e-5)
            assert person.inout == pytest.approx(float(expected.inout[2 * w + t]), abs=1e-5)


def test_pdp_with_depth_is_refused_with_a_reason() -> None:
    with pytest.raises(GazelabError, match="needs a depth map per frame"):
        list(run_video(PDPTemporal(depth=True), random_frames(1), Tracks()))


class DotModel(GazeModel):
    """A fixture model with a known answer: people in the left half look at the red dot, the others at the
    blue one (a heatmap of how red / blue each cell is)."""

    has_inout = True

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))  # gives the model a device

    def prepare_images(self, images) -> Tensor:  # type: ignore[no-untyped-def]
        return torch.stack([image_tensor(i).float() for i in images])

    def encode(self, images: Tensor) -> Tensor:
        r, g, b = images.unbind(1)
        return F.adaptive_max_pool2d(torch.stack([r - (g + b) / 2, b - (r + g) / 2], 1), 64)

    def decode(self, features: Tensor, people: People) -> GazeOutput:
        right = (people.boxes[:, 0] + people.boxes[:, 2] > 1).long()
        maps = features[people.image_index, right].clamp(min=0)
        return GazeOutput(maps / maps.amax((1, 2), keepdim=True), inout=torch.full((len(people),), 0.8))


def dots(t: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Pixel centres of the red and blue dot in frame ``t`` of the 256x192 synthetic video."""
    return (40 + 8 * t, 150 - 3 * t), (220 - 6 * t, 30 + 5 * t)


def test_image_model_on_a_synthetic_video_finds_the_known_targets(tmp_path) -> None:
    video, size, radius = tmp_path / "dots.mp4", (256, 192), 6
    yy, xx = np.mgrid[: size[1], : size[0]]
    with VideoWriter(video, fps=10, size=size) as writer:
        for t in range(20):
            frame = np.full((size[1], size[0], 3), 120, np.uint8)
            for (x, y), rgb in zip(dots(t), [(230, 20, 20), (20, 20, 230)]):
                frame[(xx - x) ** 2 + (yy - y) ** 2 <= radius**2] = rgb
            writer.write(frame)
    tracks_csv = tmp_path / "tracks.csv"
    tracks_csv.write_text("frame,track_id,x1,y1,x2,y2\n" + "".join(
        f"{t},left,10,10,50,50\n{t},right,200,140,240,180\n" for t in range(20)))  # fmt: skip
    source = VideoSource(video, stride=2)
    tracks = load_tracks([tracks_csv], source)
    with ResultWriter(tmp_path / "rows.csv", None, {"width": 256, "height": 192}) as rows:
        results = []
        for result in run_video(DotModel(), source, tracks):
            rows.write(result)
            results.append(result)
    assert rows.rows == 20
    lines = (tmp_path / "rows.csv").read_text().splitlines()[1:]
    assert [int(line.split(",")[0]) for line in lines[::2]] == list(range(0, 20, 2))
    cell = 256 / 64
    for line in lines:
        frame, _, track_id, *head_px, gx, gy, inout, label = line.split(",")
        target = dots(int(frame))[0 if track_id == "left" else 1]
        assert abs(float(gx) - target[0]) <= radius + cell and abs(float(gy) - target[1]) <= radius + cell
        assert float(inout) == 0.8 and label == ""
        given = [10.0, 10.0, 50.0, 50.0] if track_id == "left" else [200.0, 140.0, 240.0, 180.0]
        assert [float(v) for v in head_px] == given


def test_annotated_frames_keep_one_colour_per_track(tmp_path) -> None:
    from gazelab.video.annotate import annotate
    from gazelab.video.runner import FrameResult, PersonResult

    heat = np.zeros((64, 64), np.float32)
    first = PersonResult("x", Box(0.1, 0.1, 0.3, 0.4), heat, (0.5, 0.5), 0.9)
    second = PersonResult("y", Box(0.6, 0.1, 0.8, 0.4), heat, (0.5, 0.9), 0.2)
    blank = np.full((100, 200, 3), 255, np.uint8)
    order = {"x": 0, "y": 1}
    only_second = annotate(FrameResult(0, 0.0, "0", blank, [second]), order, heatmap="none")
    both = annotate(FrameResult(1, 0.1, "1", blank, [first, second]), order, heatmap="none")
    assert tuple(only_second[10, 140]) == colour(1) == tuple(both[10, 140])  # y's box edge, same colour alone
    assert tuple(both[10, 40]) == colour(0)
    assert tuple(both[70, 112]) == (255, 255, 255)  # y looks outside (in/out 0.2): no line to its point
