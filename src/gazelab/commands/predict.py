"""``gazelab predict``: where does everyone in these pictures look?

For each image, writes to ``--out``: ``<name>.png`` (the picture with a heatmap, each person's head box, a
line from the head to the predicted point in that person's colour and the in/out score), ``<name>.json``
(boxes, points and in/out per person, normalized and in pixels) and, with ``--save-heatmaps``,
``<name>.npz`` (the 64x64 heatmaps). Each picture is encoded once and all its people are queries on it.

Heads come from ``--heads`` (the same boxes for every image), ``--heads-file`` (boxes per image), or
``--detect`` (BlazeFace faces grown into head boxes). With none of them each picture counts as one person
without a head box, which only makes sense for pictures of one person.

Semantic models (SemGaze) also say *what* each person looks at: ``--labels cup,phone,screen`` (or a file of
names, or a ``vocab2id.json``) is the open vocabulary; each person's top-3 labels are printed, drawn and saved.

Torch, the model zoo and MediaPipe are imported inside the command, so ``gazelab --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import typer

from gazelab.cli import app
from gazelab.errors import GazelabError

if TYPE_CHECKING:
    from PIL import Image

    from gazelab.models import GazeModel
    from gazelab.models.vocab import Vocabulary
    from gazelab.types import Box, GazePrediction

DEFAULT_MODEL = "gazelle_dinov2_vitb14_inout"
RANDOM = "none"
"""``--weights none``: keep the random initialisation (smoke tests; predictions mean nothing)."""

Heads = tuple[list["Box | None"], list["float | None"]]
"""Head boxes of one picture and, for detected ones, their face scores."""


@app.command("predict")
def predict(
    images: list[Path] = typer.Argument(..., help="Image files."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Zoo name (see `gazelab models`)."),
    weights: str = typer.Option(
        None,
        "--weights",
        help="Weight file (published format or gazelab's). Default: the model's published "
        "weights, downloaded once. 'none': random weights, for smoke tests only (predictions mean nothing).",
    ),  # fmt: skip
    backbone_weights: Path = typer.Option(
        None,
        "--backbone-weights",
        help="Backbone weight file (official DINOv2); default: the published one "
        "when the model weights hold no backbone.",
    ),  # fmt: skip
    heads: str = typer.Option(
        None, "--heads", help='Head boxes for every image: "x1,y1,x2,y2;x1,y1,x2,y2", in pixels or normalized.'
    ),
    heads_file: Path = typer.Option(
        None, "--heads-file", help="JSON file mapping image names to lists of x1,y1,x2,y2 boxes (pixels or normalized)."
    ),
    detect: bool = typer.Option(False, "--detect", help="Detect faces (MediaPipe BlazeFace) and use their heads."),
    min_face_score: float = typer.Option(0.5, "--min-face-score", help="Detection score threshold (--detect)."),
    out: Path = typer.Option(Path("predictions"), "--out", "-o", help="Output folder."),
    save_heatmaps: bool = typer.Option(False, "--save-heatmaps", help="Also write <name>.npz with the heatmaps."),
    heatmap: str = typer.Option(
        "all",
        "--heatmap",
        help="Heatmap drawn on the picture: all (their maximum), N (person N, counted from "
        "0 as in the JSON; detected people are ordered left to right), or none.",
    ),  # fmt: skip
    device: str = typer.Option(None, "--device", help="torch device (default: cuda if available, else cpu)."),
    precision: str = typer.Option(
        "fp32", "--precision", help="fp32 (exact) or bf16 (image encoder under bf16 autocast, decoder fp32)."
    ),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the encoder and decoder (first image slow)."),
    labels: str = typer.Option(
        None,
        "--labels",
        help="Semantic models: candidate labels, 'cup,phone,screen' or a file (one per line, or vocab2id.json); "
        "prints and draws each person's top 3.",
    ),
    text_model: str = typer.Option(
        "openai/clip-vit-base-patch16",
        "--text-model",
        help="What embeds --labels: a CLIP model name or folder (cached per vocabulary), or 'random' (smoke tests).",
    ),
) -> None:
    """Predict gaze targets of the people in IMAGES; write an overlay, a JSON (and heatmaps) per image."""
    if sum((heads is not None, heads_file is not None, detect)) > 1:
        raise GazelabError("give at most one of --heads, --heads-file, --detect")
    from gazelab.infer.predictor import check_precision

    check_precision(precision)
    person = _heatmap_choice(heatmap)
    for image in images:
        if not image.is_file():
            raise GazelabError(f"{image}: image not found")
    import torch
    from rich.console import Console
    from rich.progress import track

    from gazelab.infer.predictor import Predictor
    from gazelab.io import load_image
    from gazelab.train.atomic import write_atomic

    with ExitStack() as stack:
        find_heads = _head_finder(heads, heads_file, detect, min_face_score, stack)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        vocabulary = _vocabulary(labels, text_model)
        predictor = Predictor(_load_model(model, weights, backbone_weights), device=device, vocabulary=vocabulary,
                              precision=precision, compile=compile)  # fmt: skip
        out.mkdir(parents=True, exist_ok=True)
        stems: set[str] = set()
        for path in track(images, description="predicting", console=Console(stderr=True)):
            picture = load_image(path)
            boxes, scores = find_heads(path, picture)
            predictions = []
            if boxes:
                predictor.set_image(picture)
                predictions = predictor.predict(boxes)
            else:
                print(f"gazelab: note: {path}: no head found, nothing predicted", file=sys.stderr)
            stem = _unique(path.stem, stems)
            # zlib level 1: four times faster than the default on photos, for files 15 % larger.
            # Each file appears complete under its final name or not at all (an interrupted run leaves no
            # half-written output that a rerun or a reader could take for a finished one).
            overlay = _overlay(picture, predictions, person)
            write_atomic(out / f"{stem}.png", partial(overlay.save, format="PNG", compress_level=1))
            record = _record(path, picture.size, model, weights, predictions, scores)
            _print_labels(path, predictions)
            text = json.dumps(record, indent=2) + "\n"
            write_atomic(out / f"{stem}.json", partial(_write_text, text), mode="w")
            if save_heatmaps:
                write_atomic(out / f"{stem}.npz", partial(_save_heatmaps, predictions=predictions))
    typer.echo(f"wrote {len(images)} image(s) to {out}")


def _vocabulary(labels: str | None, text_model: str) -> Vocabulary | None:
    """``--labels`` as a vocabulary in the given order (None without the option)."""
    if labels is None:
        return None
    from gazelab.models.vocab import build_vocabulary, parse_label_list

    return build_vocabulary(parse_label_list(labels), text_model, sort=False)


def _print_labels(path: Path, predictions: list[GazePrediction]) -> None:
    for index, pred in enumerate(predictions):
        if pred.labels:
            typer.echo(f"{path}: person {index}: " + ", ".join(f"{name} ({score:.2f})" for name, score in pred.labels))


def _heatmap_choice(value: str) -> int | str:
    if value in ("all", "none"):
        return value
    if value.isdigit():
        return int(value)
    raise GazelabError(f"--heatmap must be all, none or a person number (0, 1, ...), got {value!r}")


def _load_model(name: str, weights: str | None, backbone_weights: Path | None) -> GazeModel:
    from gazelab.models import create_model, get_model_spec

    if weights is None and get_model_spec(name).weights is None:
        raise GazelabError(
            f"model {name} has no published weights: pass --weights FILE, or --weights none for random weights "
            "(smoke tests only)"
        )
    pretrained: bool | str = True if weights is None else weights
    if weights == RANDOM:
        import torch

        print(f"gazelab: note: {name} has random weights — its predictions mean nothing", file=sys.stderr)
        torch.manual_seed(0)  # the same random model on every run, so smoke-test outputs can be compared
        pretrained = False
    return create_model(name, pretrained=pretrained, backbone_weights=backbone_weights)


def _head_finder(
    heads: str | None, heads_file: Path | None, detect: bool, min_face_score: float, stack: ExitStack
) -> Callable[[Path, Image.Image], Heads]:
    """A function ``(image path, picture) -> (head boxes, detection scores)`` for the chosen source.

    Boxes are parsed (and a detector is loaded, closed with ``stack``) before the model, so a typo in them
    fails at once rather than after a long model load.
    """
    from gazelab.infer.heads import HeadDetector, load_heads, parse_heads

    if heads is not None:
        given = parse_heads(heads)
        return lambda path, picture: _unscored(given.boxes(*picture.size))
    if heads_file is not None:
        table = load_heads(heads_file)
        return lambda path, picture: _unscored(table.for_image(path).boxes(*picture.size))
    if detect:
        detector = stack.enter_context(HeadDetector(min_score=min_face_score))

        def detected(path: Path, picture: Image.Image) -> Heads:
            found = detector(picture)
            return [d.head for d in found], [d.score for d in found]

        return detected
    return lambda path, picture: ([None], [None])


def _unscored(boxes: list[Box]) -> Heads:
    return list(boxes), [None] * len(boxes)


def _unique(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem-2``, ``stem-3``... when images from different folders share a name."""
    name, n = stem, 1
    while name in used:
        n += 1
        name = f"{stem}-{n}"
    used.add(name)
    return name


def _overlay(picture: Image.Image, predictions: list[GazePrediction], person: int | str) -> Image.Image:
    """The chosen heatmap (a person's, the maximum over everyone's, or none), then boxes, lines and scores."""
    import numpy as np

    from gazelab.viz import draw_predictions, heatmap_overlay

    if person == "all" and predictions:
        picture = heatmap_overlay(picture, np.max([p.heatmap for p in predictions], axis=0))
    elif isinstance(person, int) and person < len(predictions):
        picture = heatmap_overlay(picture, predictions[person].heatmap)
    return draw_predictions(picture, predictions, heatmap=False)


def _record(
    path: Path,
    size: tuple[int, int],
    model: str,
    weights: str | None,
    predictions: list[GazePrediction],
    scores: list[float | None],
) -> dict[str, Any]:
    """The JSON of one image: people in drawing order (person i has colour i), normalized and pixel values."""
    from gazelab.viz import colour

    width, height = size
    people = []
    for index, (pred, score) in enumerate(zip(predictions, scores)):
        people.append({
            "index": index,
            "colour": "#{:02x}{:02x}{:02x}".format(*colour(index)),
            "head": _rounded(pred.head.as_tuple(), 6) if pred.head is not None else None,
            "head_px": _rounded(pred.head.to_pixels(width, height), 1) if pred.head is not None else None,
            "face_score": None if score is None else round(score, 4),
            "point": _rounded(pred.point, 6),
            "point_px": _rounded((pred.point[0] * width, pred.point[1] * height), 1),
            "inout": None if pred.inout is None else round(pred.inout, 4),
            **({"labels": [[name, score] for name, score in pred.labels]} if pred.labels else {}),
        })  # fmt: skip
    return {
        "image": str(path),
        "width": width,
        "height": height,
        "model": model,
        "weights": weights or "published",
        "people": people,
    }


def _rounded(values: tuple[float, ...], digits: int) -> list[float]:
    """Enough digits for any use (points are multiples of 1/64, exact at 6), none of float noise's."""
    return [round(v, digits) for v in values]


def _write_text(text: str, handle: Any) -> None:
    handle.write(text)


def _save_heatmaps(path: Path | BinaryIO, predictions: list[GazePrediction]) -> None:
    """``heatmaps`` [P, 64, 64] float32, ``heads`` [P, 4] (NaN: no box), ``points`` [P, 2], ``inout`` [P] (NaN:
    no in/out head), in the JSON's person order; a plain npz (no pickled objects)."""
    import numpy as np

    nan4 = (float("nan"),) * 4
    np.savez_compressed(
        path,
        heatmaps=np.array([p.heatmap for p in predictions], dtype=np.float32).reshape(-1, 64, 64),
        heads=np.array([p.head.as_tuple() if p.head else nan4 for p in predictions], dtype=np.float32).reshape(-1, 4),
        points=np.array([p.point for p in predictions], dtype=np.float32).reshape(-1, 2),
        inout=np.array([float("nan") if p.inout is None else p.inout for p in predictions], dtype=np.float32),
    )
