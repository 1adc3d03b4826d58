"""Simulated Grad-CAM priors for synthetic data, where no VQA model is needed (or would understand the scenes).

A real VQA Grad-CAM is coarse (one value per image patch: 24x24 for BLIP at 384 px), right about the object
only some of the time, and smeared over other things — often the person's own box. The simulation reproduces
those properties with explicit, recorded quality parameters (:class:`SimulationParams`, stored in the store's
``meta.json`` and in the dataset's ``synthetic.json``), so semi-supervised methods can be studied against a
prior of known quality:

* with probability ``p_correct`` a blob sits on the person's true target (out-of-frame people never get one),
  otherwise on another object of the image (a distractor, from ``objects.csv``);
* when the blob is on a distractor, the true target may keep a weaker blob (``missed_target_weight``): a real
  CAM is often hot on several objects, and its peak is on the wrong one;
* the blob centre is jittered by ``jitter`` object sizes and its spread is ``blob_scale`` object sizes;
* a weaker blob of weight ``head_weight`` on the person's head, and ReLU'd Gaussian noise of sd ``noise``;
* everything is drawn on a ``grid`` x ``grid`` patch grid, bilinearly resized to 64x64 and min-max normalised;
* with probability ``p_invalid`` the "VQA answer" had no noun: the record is invalid (an all-zero map).

Every person's map depends only on (seed, image path, person id), so sharded or resumed runs agree exactly.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from gazelab.errors import GazelabError
from gazelab.priors.jobs import pending, run_job
from gazelab.priors.sources import load_frames
from gazelab.priors.store import META, SIZE, PriorRecord, PriorStore, person_key
from gazelab.types import Box, Frame, Person

OBJECTS_FILE = "objects.csv"
SYNTHETIC_META = "synthetic.json"
PRIORS_DIR = "priors"


@dataclass(frozen=True)
class SimulationParams:
    """Quality of the simulated prior (defaults: a mediocre but useful VQA Grad-CAM)."""

    p_correct: float = 0.6
    jitter: float = 0.25
    blob_scale: float = 0.6
    head_weight: float = 0.3
    noise: float = 0.15
    grid: int = 24
    p_invalid: float = 0.02
    seed: int = 0
    missed_target_weight: float = 0.0
    """Weight of the true target's blob when the main blob sits on a distractor (0: single-blob priors)."""

    def validate(self) -> SimulationParams:
        for name in ("p_correct", "p_invalid"):
            if not 0 <= getattr(self, name) <= 1:
                raise GazelabError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        for name in ("jitter", "head_weight", "noise", "missed_target_weight"):
            if getattr(self, name) < 0:
                raise GazelabError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.blob_scale <= 0 or not 2 <= self.grid <= SIZE:
            raise GazelabError(f"blob_scale must be > 0 and grid in [2, {SIZE}], got {self.blob_scale}, {self.grid}")
        return self

    def meta(self) -> dict:
        return {"kind": "simulated", "params": asdict(self)}


def load_objects(root: str | Path) -> dict[str, list[Box]]:
    """Every object box per image path from a synthetic dataset's ``objects.csv`` (pixels -> normalized, using
    the image size of ``synthetic.json``)."""
    root = Path(root)
    table, meta_path = root / OBJECTS_FILE, root / SYNTHETIC_META
    if not table.is_file() or not meta_path.is_file():
        raise GazelabError(f"{root}: simulated priors need {OBJECTS_FILE} and {SYNTHETIC_META} of a synthetic image "
                           "dataset (`gazelab synth`, image mode) — pass its folder as --root")  # fmt: skip
    config = json.loads(meta_path.read_text(encoding="utf-8"))["config"]
    width, height = config["width"], config["height"]
    objects: dict[str, list[Box]] = {}
    with table.open(encoding="utf-8", newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            try:
                px = [float(row[k]) for k in ("o_xmin", "o_ymin", "o_xmax", "o_ymax")]
                box = Box.from_pixels(*px, width=width, height=height)
            except (KeyError, TypeError, ValueError) as err:
                raise GazelabError(f"{table}:{line}: malformed object row ({err}) — regenerate the dataset") from err
            objects.setdefault(row["file_name"], []).append(box)
    return objects


def _rng(seed: int, image: str, person: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(image.encode()), person & 0xFFFFFFFF]))


def _target_index(person: Person, boxes: Sequence[Box]) -> int | None:
    """The object the person looks at: the smallest box holding the mean annotator point (None: out of frame)."""
    point = person.gaze_point
    if person.inout is False or point is None:
        return None
    holding = [i for i, b in enumerate(boxes) if b.contains(point)]
    return min(holding, key=lambda i: boxes[i].area) if holding else None


def _blob(grid: int, box: Box, rng: np.random.Generator, params: SimulationParams, weight: float) -> np.ndarray:
    cx, cy = box.center
    size = np.array([max(box.width, 1.0 / grid), max(box.height, 1.0 / grid)])
    centre = np.array([cx, cy]) + rng.normal(0.0, params.jitter, 2) * size
    sigma = np.maximum(params.blob_scale * size, 0.5 / grid)
    cells = (np.arange(grid) + 0.5) / grid
    gx = np.exp(-0.5 * ((cells - centre[0]) / sigma[0]) ** 2)
    gy = np.exp(-0.5 * ((cells - centre[1]) / sigma[1]) ** 2)
    return weight * np.outer(gy, gx)


def simulate_person(frame: Frame, index: int, boxes: Sequence[Box], params: SimulationParams) -> PriorRecord:
    """The simulated prior of ``frame.people[index]`` (``boxes``: every object of the image)."""
    image, pid = person_key(frame, index)
    person = frame.people[index]
    rng = _rng(params.seed, image, pid)
    if rng.random() < params.p_invalid:
        return PriorRecord(image, pid, np.zeros((SIZE, SIZE), np.float16), valid=False)
    target = _target_index(person, boxes)
    correct = target is not None and rng.random() < params.p_correct
    others = [i for i in range(len(boxes)) if i != target]
    if correct:
        focus: Box | None = boxes[target]  # type: ignore[index]
    elif others:
        focus = boxes[others[int(rng.integers(len(others)))]]
    else:
        focus = None
    grid = params.grid
    cam = np.abs(rng.normal(0.0, params.noise, (grid, grid)))
    if focus is not None:
        cam += _blob(grid, focus, rng, params, 1.0)
    if person.head is not None and params.head_weight > 0:
        cam += _blob(grid, person.head, rng, params, params.head_weight)
    if not correct and target is not None and params.missed_target_weight > 0:  # drawn last: other maps unchanged
        cam += _blob(grid, boxes[target], rng, params, params.missed_target_weight)
    big = np.asarray(Image.fromarray(cam.astype(np.float32)).resize((SIZE, SIZE), Image.BILINEAR))
    span = float(big.max() - big.min())
    heatmap = (big - big.min()) / span if span > 0 else np.zeros_like(big)
    return PriorRecord(image, pid, heatmap.astype(np.float16))


def simulator(
    objects: dict[str, list[Box]], params: SimulationParams
) -> Callable[[Sequence[tuple[Frame, int]]], list[PriorRecord]]:
    """A ``produce`` function for :func:`gazelab.priors.jobs.run_job`: simulated priors of a batch of people."""

    def produce(items: Sequence[tuple[Frame, int]]) -> list[PriorRecord]:
        return [simulate_person(frame, index, objects.get(frame.path, []), params) for frame, index in items]

    return produce


def record_in_metadata(dataset: str | Path, store: str | Path, params: SimulationParams) -> None:
    """Add the simulated prior's location and quality parameters to the dataset's ``synthetic.json`` (same
    formatting as :mod:`gazelab.data.synthetic` writes, so the file stays deterministic)."""
    path = Path(dataset) / SYNTHETIC_META
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["priors"] = {"store": os.path.relpath(store, dataset), **params.meta()}
    path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_simulated_priors(dataset: str | Path, params: SimulationParams, name: str = PRIORS_DIR) -> PriorStore:
    """The simulated store of a whole synthetic image dataset at ``dataset/name``, recorded in its metadata.

    A store left there by an earlier generation is replaced: it belongs to the images that were overwritten."""
    dataset = Path(dataset)
    frames, root = load_frames(dataset)
    out = dataset / name
    if (out / META).is_file():
        shutil.rmtree(out)
    store = PriorStore(out, create=True, meta=params.meta())
    run_job(pending(frames, store), simulator(load_objects(root), params), store, batch_size=1024, flush_every=4096)
    record_in_metadata(dataset, out, params)
    return store
