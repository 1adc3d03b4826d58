"""``gazelab video``: where does everyone in a video look, frame by frame?

Reads a video file or a folder of frames, takes head tracks from files (``--tracks``) or detects and links
them (``--detect``, a first pass over the video), runs a model with its video protocol (image models frame
by frame, VAT with its ConvLSTM state per track, temporal PDP in 5-frame windows; see
:mod:`gazelab.video.runner`) and writes an annotated mp4 plus one CSV row / JSON entry per person per frame
(see :mod:`gazelab.video.output`). Everything streams: memory does not grow with the video's length.

Torch, PyAV, the model zoo and MediaPipe are imported inside the command, so ``gazelab --help`` stays fast.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gazelab.cli import app
from gazelab.commands.predict import DEFAULT_MODEL, _load_model
from gazelab.errors import GazelabError

if TYPE_CHECKING:
    from rich.progress import Progress

    from gazelab.video.reader import VideoSource
    from gazelab.video.tracks import Tracks


@app.command("video")
def video(
    source_path: Path = typer.Argument(..., metavar="INPUT", help="Video file (mp4, avi, mov, ...) or frame folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Annotated video to write (.mp4)."),
    tracks_files: list[Path] = typer.Option(
        None,
        "--tracks",
        help="Head tracks: one CSV 'frame,track_id,x1,y1,x2,y2', or VAT per-person files "
        "'frame,x1,y1,x2,y2' (repeat the option, one file per person; the file name is the track id).",
    ),  # fmt: skip
    detect: bool = typer.Option(False, "--detect", help="Detect heads (MediaPipe BlazeFace), link them into tracks."),
    min_face_score: float = typer.Option(0.5, "--min-face-score", help="Detection score threshold (--detect)."),
    min_track_frames: int = typer.Option(
        3, "--min-track-frames", help="Drop detected tracks seen in fewer frames (false detections; --detect)."
    ),
    smooth_boxes: bool = typer.Option(
        False, "--smooth-boxes", help="Smooth each track's head boxes over 11 frames, as the VAT benchmark does."
    ),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Zoo name (see `gazelab models`)."),
    weights: str = typer.Option(
        None,
        "--weights",
        help="Weight file. Default: the model's published weights, downloaded once. 'none': "
        "random weights, for smoke tests only (predictions mean nothing).",
    ),  # fmt: skip
    backbone_weights: Path = typer.Option(None, "--backbone-weights", help="Backbone weight file (official DINOv2)."),
    stride: int = typer.Option(None, "--stride", help="Process every N-th frame (default 1)."),
    fps: float = typer.Option(None, "--fps", help="Process about this many frames per second (sets the stride)."),
    input_fps: float = typer.Option(
        None, "--input-fps", help="Frame rate of a frame folder (default 25), or to override a video's."
    ),
    smooth: str = typer.Option(
        "none",
        "--smooth",
        help="Smooth an image model's answers over time per track: none, one-euro (points "
        "and in/out) or ema (heatmaps). See docs/video.md.",
    ),  # fmt: skip
    csv_path: Path = typer.Option(None, "--csv", help="Per-frame rows (default: OUT with .csv)."),
    json_path: Path = typer.Option(None, "--json", help="Per-frame JSON (default: OUT with .json)."),
    heatmap: str = typer.Option("all", "--heatmap", help="Heatmap drawn: all (their maximum), none, or a track id."),
    device: str = typer.Option(None, "--device", help="torch device (default: cuda if available, else cpu)."),
    precision: str = typer.Option(
        "fp32", "--precision", help="fp32 (exact) or bf16 (image encoder under bf16 autocast; frame-by-frame models)."
    ),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the encoder and decoder (first frames slow)."),
) -> None:
    """Predict gaze targets of tracked people in a video; write an annotated mp4, a CSV and a JSON."""
    from gazelab.video.smoothing import SMOOTHERS

    if bool(tracks_files) == detect:
        raise GazelabError("give either --tracks FILE (one CSV, or one VAT file per person) or --detect")
    if stride is not None and fps is not None:
        raise GazelabError("give at most one of --stride and --fps")
    if smooth not in SMOOTHERS:
        raise GazelabError(f"--smooth must be one of {', '.join(SMOOTHERS)}, got {smooth!r}")
    from gazelab.infer.predictor import check_precision

    check_precision(precision)
    if out.suffix.lower() != ".mp4":
        raise GazelabError(f"--out {out}: the annotated video is an mp4; name it *.mp4")

    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from gazelab.video.annotate import annotate
    from gazelab.video.output import ResultWriter
    from gazelab.video.reader import VideoSource
    from gazelab.video.runner import check_video_model, run_video
    from gazelab.video.smoothing import TrackSmoother
    from gazelab.video.writer import VideoWriter

    source = VideoSource(source_path, stride=stride or 1, fps=input_fps)
    if fps is not None:
        if not fps > 0:
            raise GazelabError(f"--fps must be positive, got {fps}")
        source.stride = max(1, round(source.fps / fps))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        tracks = _tracks(source, tracks_files, min_face_score, min_track_frames, bar)
        if smooth_boxes:
            tracks = tracks.smoothed()
        order = {track_id: i for i, track_id in enumerate(tracks.track_ids)}
        if not order:
            print(f"gazelab: note: {source_path}: no heads in any frame; the video is written unannotated",
                  file=sys.stderr)  # fmt: skip
        if heatmap not in ("all", "none") and heatmap not in order:
            raise GazelabError(f"--heatmap {heatmap!r}: no such track (tracks: {', '.join(order) or 'none'})")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        net = _load_model(model, weights, backbone_weights).to(device)
        check_video_model(net)
        smoother = None if smooth == "none" else TrackSmoother(smooth)
        header = {"video": str(source_path), "width": source.width, "height": source.height, "fps": source.output_fps,
                  "stride": source.stride, "model": model, "weights": weights or "published", "smooth": smooth,
                  "tracks": list(order)}  # fmt: skip
        csv_path = csv_path or out.with_suffix(".csv")
        json_path = json_path or out.with_suffix(".json")
        task = bar.add_task("gaze", total=len(source) or None)
        start = time.perf_counter()
        with VideoWriter(out, source.output_fps, (source.width, source.height)) as writer, \
                ResultWriter(csv_path, json_path, header) as rows:  # fmt: skip
            for result in run_video(net, source, tracks, smoother, precision, compile):
                writer.write(annotate(result, order, heatmap))
                rows.write(result)
                bar.advance(task)
        seconds = time.perf_counter() - start
    typer.echo(f"wrote {writer.frames} frames to {out} ({writer.codec}), {rows.rows} rows to {csv_path} and "
               f"{json_path}; {writer.frames / max(seconds, 1e-9):.2f} frames/s")  # fmt: skip


def _tracks(
    source: VideoSource, files: list[Path] | None, min_face_score: float, min_track_frames: int, bar: Progress
) -> Tracks:
    """Given tracks, or a first pass that detects heads in every kept frame and links them."""
    from gazelab.video.tracks import detect_tracks, load_tracks

    if files:
        return load_tracks(files, source)
    from gazelab.infer.heads import HeadDetector

    task = bar.add_task("heads", total=len(source) or None)
    with HeadDetector(min_score=min_face_score) as detector:
        return detect_tracks(
            source,
            lambda pixels: [d.head for d in detector(pixels)],
            min_frames=min_track_frames,
            on_frame=lambda: bar.advance(task),
        )
