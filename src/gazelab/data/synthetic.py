"""Procedural gaze-following data, deterministic from a seed, written in the real formats.

Every image (or video clip) ``i`` gets its own random generator seeded by ``SeedSequence([seed, stream, i])``:
image ``i`` is the same whatever the number of images asked for and whichever worker makes it, so datasets
can be generated in parallel and grown without changing what is already there. Which split an image (or a
video show) belongs to is a fixed function of its index (:func:`is_test`).

A scene is a textured room with 3-8 vivid objects from :data:`VOCABULARY` and 1-4 people. Each person looks
at one object — preferably one that no other object hides along the line of sight, at least
``min_target_distance`` head widths away — or, in the train split, out of the frame (15 %): then they face
the camera or look along a ray that meets no object. The head drawing shows the gaze direction (see
:mod:`gazelab.data.synthetic_draw`), so the task is learnable; annotators are jittered points inside the
target box (one on train, several on test). See ``docs/synthetic.md`` for the files and the presets.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields, replace
from fractions import Fraction
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from gazelab.data.formats.gazefollow import write_gazefollow
from gazelab.data.formats.gazehoi import write_gazehoi, write_vocab
from gazelab.data.formats.vat import write_vat
from gazelab.data.synthetic_draw import (
    VOCABULARY,
    Background,
    Colour,
    PixelBox,
    Scene,
    SceneObject,
    ScenePerson,
    body_box,
    draw_depth,
    draw_people,
    draw_scene,
    draw_static,
    eye_point,
    muted_colour,
)
from gazelab.errors import GazelabError
from gazelab.types import Box, Frame, Person

STREAM_IMAGE, STREAM_CLIP = 0, 1
METADATA = "synthetic.json"
DEPTH_DIR = "depth"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SynthConfig:
    """Everything that decides the generated data. Ranges are inclusive ``(low, high)``; sizes are px."""

    seed: int = 0
    mode: str = "image"
    """``image`` (GazeFollow/GazeHOI files) or ``video`` (a VAT tree)."""
    width: int = 320
    height: int = 240
    images: int = 1000
    test_fraction: float = 0.2
    people: tuple[int, int] = (1, 4)
    objects: tuple[int, int] = (3, 8)
    head_size: tuple[int, int] = (26, 40)
    """Head box width; its height is 1.15 x the width."""
    object_size: tuple[int, int] = (20, 44)
    """Longer side of an object box."""
    out_of_frame: float = 0.15
    """Share of people looking outside the image (train images and all video frames; never the test images)."""
    camera_facing: float = 0.5
    """Share of out-of-frame people facing the camera; the others look along a ray that meets no object."""
    test_annotators: tuple[int, int] = (4, 8)
    annotator_spread: float = 0.12
    """Annotator jitter: sd as a fraction of the target box size, clipped to +-0.25 (inside the box)."""
    min_target_distance: float = 1.5
    """Preferred eye-to-target distance in head widths (a target next to the head has no clear direction)."""
    cue_strength: float = 1.0
    """How far face, eyes and nose are shifted toward the target (1 = the designed offset, 0 = no cue)."""
    cue_noise_deg: float = 4.0
    """Sd of the angle between the drawn head direction and the true one."""
    grain: float = 4.0
    """Sd of the per-pixel grey noise of the background."""
    jpeg_quality: int = 90
    depth: bool = False
    """Also write 16-bit depth PNGs (PDP layout: ``depth/<image path>.png``)."""
    clips: int = 8
    frames_per_clip: int = 32
    clips_per_show: int = 2
    switch_frames: tuple[int, int] = (8, 24)
    """Frames between two target switches of a person in video mode."""

    def validate(self) -> SynthConfig:
        if self.mode not in ("image", "video"):
            raise GazelabError(f"mode must be 'image' or 'video', not {self.mode!r}")
        if self.seed < 0:
            raise GazelabError("seed must be a non-negative integer")
        counts = {"images": self.images, "clips": self.clips, "frames_per_clip": self.frames_per_clip,
                  "clips_per_show": self.clips_per_show}  # fmt: skip
        for name, value in counts.items():
            if value < 1:
                raise GazelabError(f"{name} must be at least 1, got {value}")
        if not 0 <= self.test_fraction <= 1 or not 0 <= self.out_of_frame <= 1:
            raise GazelabError("test_fraction and out_of_frame must lie in [0, 1]")
        for name in ("people", "objects", "head_size", "object_size", "test_annotators", "switch_frames"):
            low, high = getattr(self, name)
            if not 1 <= low <= high:
                raise GazelabError(f"{name} must be a range 1 <= low <= high, got {(low, high)}")
        if self.object_size[1] * 2 > min(self.width, self.height) or self.head_size[1] * 3 > self.height:
            raise GazelabError(f"objects {self.object_size} or heads {self.head_size} too large for "
                               f"{self.width}x{self.height} images")  # fmt: skip
        return self


PRESETS: dict[str, SynthConfig] = {
    # Fixed: benchmarks and published numbers refer to it. Do not tune models by changing it — add a preset.
    "benchmark": SynthConfig(images=5000, clips=40),
    # Same difficulty, few images: tests, demos, smoke runs.
    "small": SynthConfig(images=200, clips=4, frames_per_clip=16),
}


def preset(name: str, **overrides: object) -> SynthConfig:
    """A preset with some fields replaced; unknown names are a :class:`GazelabError`."""
    if name not in PRESETS:
        raise GazelabError(f"unknown preset {name!r} — choose one of {', '.join(PRESETS)}")
    known = {f.name for f in fields(SynthConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise GazelabError(f"unknown synthetic options {unknown}")
    return replace(PRESETS[name], **overrides).validate()  # type: ignore[arg-type]


def is_test(index: int, fraction: float) -> bool:
    """Whether image/show ``index`` is in the test split: exact rational arithmetic, so the split of an index
    never depends on how many there are. Any first ``n`` indices hold ``ceil(n * fraction)`` test items, index 0
    among them (so even a tiny dataset has a test split)."""
    f = Fraction(fraction).limit_denominator(1000)
    return -(-(index + 1) * f.numerator // f.denominator) > -(-index * f.numerator // f.denominator)


def _rng(seed: int, stream: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream, index]))


# --- layout ----------------------------------------------------------------------------------------------


def _overlaps(a: PixelBox, b: PixelBox, margin: int = 0) -> bool:
    return a[0] < b[2] + margin and b[0] < a[2] + margin and a[1] < b[3] + margin and b[1] < a[3] + margin


def _sample_background(rng: np.random.Generator, cfg: SynthConfig) -> Background:
    w, h = cfg.width, cfg.height
    clutter = []
    for _ in range(rng.integers(0, 4)):
        cw, ch = int(rng.integers(w // 8, w // 3)), int(rng.integers(h // 8, h // 3))
        x1, y1 = int(rng.integers(0, w - cw)), int(rng.integers(0, h - ch))
        clutter.append(((x1, y1, x1 + cw, y1 + ch), muted_colour(rng, (0.05, 0.3), (0.3, 0.8))))
    return Background(
        horizon=int(rng.integers(round(0.3 * h), round(0.6 * h))),
        wall=muted_colour(rng, (0.05, 0.35), (0.45, 0.85)),
        floor=muted_colour(rng, (0.05, 0.35), (0.3, 0.7)),
        coarse=rng.standard_normal((4, 5, 3)).astype(np.float32),
        grain_seed=int(rng.integers(2**32)),
        stripes=int(rng.choice([0, 0, 6, 10, 16])),
        tile=int(rng.integers(16, 40)),
        clutter=tuple(clutter),
        grain=cfg.grain,
    )


def _footprint(head: PixelBox) -> PixelBox:
    """Head and torso: the area objects must leave free so the person is seen whole."""
    bx1, _, bx2, by2 = body_box(head)
    return (bx1, head[1], bx2, by2)


def _place_people(rng: np.random.Generator, cfg: SynthConfig, count: int) -> list[PixelBox]:
    """Heads of people standing side by side: their torsos never overlap horizontally, so every person is
    fully visible and (as GazeFollow identifies a person by image and eye x) no two share an eye x."""
    heads: list[PixelBox] = []
    for _ in range(count):
        for _try in range(50):
            w = int(rng.integers(cfg.head_size[0], cfg.head_size[1] + 1))
            h = round(1.15 * w)
            x1 = int(rng.integers(0, cfg.width - w + 1))
            y1 = int(rng.integers(0, max(1, cfg.height - round(1.6 * h)) + 1))
            head = (x1, y1, x1 + w, y1 + h)
            span = _footprint(head)
            if all(span[0] >= o[2] + 2 or o[0] >= span[2] + 2 for o in map(_footprint, heads)):
                heads.append(head)
                break
    return heads


def _place_objects(
    rng: np.random.Generator, cfg: SynthConfig, count: int, blocked: list[PixelBox]
) -> list[SceneObject]:
    objects: list[SceneObject] = []
    for _ in range(count):
        cls = VOCABULARY[int(rng.integers(len(VOCABULARY)))]
        jitter = rng.integers(-12, 13, 3)
        colour = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(cls.colour, jitter))
        for _try in range(30):
            side = int(rng.integers(cfg.object_size[0], cfg.object_size[1] + 1))
            w, h = (
                (side, max(8, round(side / cls.aspect)))
                if cls.aspect >= 1
                else (max(8, round(side * cls.aspect)), side)
            )
            x1, y1 = int(rng.integers(0, cfg.width - w + 1)), int(rng.integers(0, cfg.height - h + 1))
            box = (x1, y1, x1 + w, y1 + h)
            if not any(_overlaps(box, b, 3) for b in blocked + [o.box for o in objects]):
                objects.append(SceneObject(cls, box, colour))  # type: ignore[arg-type]
                break
    return objects


def _sample_layout(rng: np.random.Generator, cfg: SynthConfig) -> tuple[list[PixelBox], list[SceneObject]]:
    """People first, then objects around them; a crowded draw sheds people until the minimum of objects fits."""
    heads = _place_people(rng, cfg, int(rng.integers(cfg.people[0], cfg.people[1] + 1)))
    n_objects = int(rng.integers(cfg.objects[0], cfg.objects[1] + 1))
    while True:
        objects = _place_objects(rng, cfg, n_objects, [_footprint(h) for h in heads])
        if len(objects) >= cfg.objects[0] or len(heads) == 1:
            break
        heads = heads[:-1]
    if not objects:
        raise GazelabError(f"no object fits a {cfg.width}x{cfg.height} image — lower object_size")
    return heads, objects


# --- where people look -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gaze:
    """One person's gaze at one moment: target object (None = out of frame), drawn direction, annotations."""

    target: int | None
    direction: tuple[float, float]
    eye: tuple[float, float]
    points: tuple[tuple[float, float], ...]
    """Annotator points in px, inside the target box; empty when out of frame."""


def _segment_hits(p: tuple[float, float], q: tuple[float, float], box: PixelBox) -> bool:
    """Whether segment p->q crosses ``box`` (Liang-Barsky clipping)."""
    t0, t1 = 0.0, 1.0
    d = (q[0] - p[0], q[1] - p[1])
    for axis in (0, 1):
        lo, hi = box[axis], box[axis + 2]
        if abs(d[axis]) < 1e-12:
            if not lo <= p[axis] <= hi:
                return False
            continue
        a, b = (lo - p[axis]) / d[axis], (hi - p[axis]) / d[axis]
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
        if t0 > t1:
            return False
    return True


def _aim(head: PixelBox, target: tuple[float, float], strength: float) -> tuple[float, float]:
    """Unit direction from the drawn eyes to ``target``; the eyes move with the direction, so iterate."""
    direction = (0.0, 0.0)
    for _ in range(3):
        ex, ey = eye_point(head, (direction[0] * strength, direction[1] * strength))
        dx, dy = target[0] - ex, target[1] - ey
        norm = math.hypot(dx, dy) or 1.0
        direction = (dx / norm, dy / norm)
    return direction


def _choose_target(rng: np.random.Generator, cfg: SynthConfig, head: PixelBox, objects: list[SceneObject]) -> int:
    eye = eye_point(head, (0.0, 0.0))
    min_dist = cfg.min_target_distance * (head[2] - head[0])

    def centre(o: SceneObject) -> tuple[float, float]:
        return ((o.box[0] + o.box[2]) / 2, (o.box[1] + o.box[3]) / 2)

    far = [i for i, o in enumerate(objects) if math.dist(eye, centre(o)) >= min_dist]
    clear = [i for i in far if not any(_segment_hits(eye, centre(objects[i]), o.box)
                                       for j, o in enumerate(objects) if j != i)]  # fmt: skip
    pool = clear or far or list(range(len(objects)))
    return pool[int(rng.integers(len(pool)))]


def _outside_direction(
    rng: np.random.Generator, cfg: SynthConfig, head: PixelBox, objects: list[SceneObject]
) -> tuple[float, float]:
    """Facing the camera, or a direction whose ray to the image border meets no object ((0, 0) if none)."""
    if rng.random() < cfg.camera_facing:
        return (0.0, 0.0)
    eye = eye_point(head, (0.0, 0.0))
    reach = 2.0 * (cfg.width + cfg.height)
    for angle in rng.uniform(0, 2 * math.pi, 20):
        direction = (math.cos(angle), math.sin(angle))
        end = (eye[0] + direction[0] * reach, eye[1] + direction[1] * reach)
        if not any(_segment_hits(eye, end, o.box) for o in objects):
            return direction
    return (0.0, 0.0)


def sample_gaze(
    rng: np.random.Generator,
    cfg: SynthConfig,
    head: PixelBox,
    objects: list[SceneObject],
    allow_out: bool,
    annotators: int,
    avoid: int | None = None,
) -> Gaze:
    """Where a person at ``head`` looks: pick the target, draw the head direction with angular noise, and
    place ``annotators`` jittered points inside the target box. ``avoid``: a target to switch away from."""
    if allow_out and rng.random() < cfg.out_of_frame:
        target = None
        true_dir = _outside_direction(rng, cfg, head, objects)
    else:
        target = _choose_target(rng, cfg, head, objects)
        for _ in range(4):
            if target != avoid or len(objects) == 1:
                break
            target = _choose_target(rng, cfg, head, objects)
        box = objects[target].box
        true_dir = _aim(head, ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), cfg.cue_strength)
    noise = math.radians(float(rng.normal(0.0, cfg.cue_noise_deg)))
    if true_dir == (0.0, 0.0):
        direction = true_dir
    else:
        angle = math.atan2(true_dir[1], true_dir[0]) + noise
        direction = (cfg.cue_strength * math.cos(angle), cfg.cue_strength * math.sin(angle))
    points: tuple[tuple[float, float], ...] = ()
    if target is not None:
        x1, y1, x2, y2 = objects[target].box
        offsets = np.clip(rng.normal(0.0, cfg.annotator_spread, (annotators, 2)), -0.25, 0.25)
        points = tuple(
            ((x1 + x2) / 2 + float(ox) * (x2 - x1), (y1 + y2) / 2 + float(oy) * (y2 - y1)) for ox, oy in offsets
        )
    return Gaze(target, direction, eye_point(head, direction), points)


SKIN = ((255, 220, 177), (236, 192, 150), (224, 172, 105), (198, 134, 66), (141, 85, 36), (96, 60, 30))
HAIR = ((25, 20, 18), (70, 45, 25), (120, 80, 40), (200, 170, 100), (140, 140, 140), (110, 40, 20))


def _sample_look(rng: np.random.Generator) -> tuple[Colour, Colour, Colour]:
    """Skin (a natural tone, slightly jittered), hair and shirt colours."""
    tone = SKIN[int(rng.integers(len(SKIN)))]
    skin = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(tone, rng.integers(-10, 11, 3)))
    hair = HAIR[int(rng.integers(len(HAIR)))]
    shirt = muted_colour(rng, (0.1, 0.55), (0.25, 0.8))
    return skin, hair, shirt  # type: ignore[return-value]


def person_record(
    cfg: SynthConfig, head: PixelBox, gaze: Gaze, objects: list[SceneObject], index: int, track_id: str | None = None
) -> Person:
    """The annotation of a drawn person, in normalized coordinates."""
    w, h = cfg.width, cfg.height
    target = objects[gaze.target] if gaze.target is not None else None
    return Person(
        head=Box.from_pixels(*head, width=w, height=h),
        gaze=tuple((x / w, y / h) for x, y in gaze.points),
        inout=target is not None,
        label=target.cls.name if target else None,
        labels=(target.cls.name,) if target else (),
        target_box=Box.from_pixels(*target.box, width=w, height=h) if target else None,
        track_id=track_id,
        person_id=str(index),
        eye=(gaze.eye[0] / w, gaze.eye[1] / h),
        body=Box.from_pixels(*body_box(head), width=w, height=h).clamp(),
    )


# --- scenes ----------------------------------------------------------------------------------------------


def sample_scene(rng: np.random.Generator, cfg: SynthConfig, split: str = "train") -> tuple[Scene, list[Person]]:
    """A still scene and its annotations (no pixels yet): test people are all in frame, with several
    annotators each."""
    background = _sample_background(rng, cfg)
    heads, objects = _sample_layout(rng, cfg)
    people, records = [], []
    for index, head in enumerate(heads):
        skin, hair, shirt = _sample_look(rng)
        annotators = int(rng.integers(cfg.test_annotators[0], cfg.test_annotators[1] + 1)) if split == "test" else 1
        gaze = sample_gaze(rng, cfg, head, objects, allow_out=split == "train", annotators=annotators)
        people.append(ScenePerson(head, gaze.direction, skin, hair, shirt))
        records.append(person_record(cfg, head, gaze, objects, index))
    return Scene(cfg.width, cfg.height, background, tuple(objects), tuple(people)), records


def generate_scene(
    rng: np.random.Generator, cfg: SynthConfig, split: str = "train", path: str = ""
) -> tuple[Image.Image, Frame]:
    """One drawn image and its :class:`Frame` (``path`` is recorded as given)."""
    scene, people = sample_scene(rng, cfg, split)
    return draw_scene(scene), Frame(path=path, width=cfg.width, height=cfg.height, people=people)


def sample_clip(rng: np.random.Generator, cfg: SynthConfig) -> tuple[Scene, list[list[tuple[ScenePerson, Gaze]]]]:
    """A still room with people who switch targets every ``switch_frames`` frames (out of frame included,
    as in VideoAttentionTarget); returns the room without people and, per frame, each person's state."""
    background = _sample_background(rng, cfg)
    heads, objects = _sample_layout(rng, cfg)
    tracks = []
    for head in heads:
        skin, hair, shirt = _sample_look(rng)
        states: list[tuple[ScenePerson, Gaze]] = []
        gaze: Gaze | None = None
        switch = 0
        for t in range(cfg.frames_per_clip):
            if t == switch:
                gaze = sample_gaze(rng, cfg, head, objects, True, 1, avoid=gaze.target if gaze else None)
                switch = t + int(rng.integers(cfg.switch_frames[0], cfg.switch_frames[1] + 1))
            assert gaze is not None
            states.append((ScenePerson(head, gaze.direction, skin, hair, shirt), gaze))
        tracks.append(states)
    frames = [[track[t] for track in tracks] for t in range(cfg.frames_per_clip)]
    return Scene(cfg.width, cfg.height, background, tuple(objects), ()), frames


# --- writing ---------------------------------------------------------------------------------------------


def image_path(cfg: SynthConfig, index: int) -> str:
    split = "test" if is_test(index, cfg.test_fraction) else "train"
    return f"{split}/{index // 1000:08d}/{index:08d}.jpg"


def clip_name(cfg: SynthConfig, clip: int) -> str:
    return f"show{clip // cfg.clips_per_show:03d}/clip{clip:04d}"


def _save(out: Path, rel: str, image: Image.Image, depth: np.ndarray | None, quality: int) -> None:
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="JPEG", quality=quality)
    if depth is not None:
        depth_path = (out / DEPTH_DIR / rel).with_suffix(".png")
        depth_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(depth).save(depth_path, format="PNG")


def _make_image(out: Path, cfg: SynthConfig, index: int) -> tuple[Frame, list[tuple[str, ...]]]:
    rel = image_path(cfg, index)
    split = rel.split("/", 1)[0]
    scene, people = sample_scene(_rng(cfg.seed, STREAM_IMAGE, index), cfg, split)
    _save(out, rel, draw_scene(scene), draw_depth(scene) if cfg.depth else None, cfg.jpeg_quality)
    objects = [(rel, o.cls.name, *map(str, o.box)) for o in scene.objects]
    return Frame(path=rel, width=cfg.width, height=cfg.height, people=people, root=out), objects


def _make_clip(out: Path, cfg: SynthConfig, clip: int) -> list[Frame]:
    """Draw the still room once, then only the people of each frame on a copy of it."""
    name = clip_name(cfg, clip)
    room, states = sample_clip(_rng(cfg.seed, STREAM_CLIP, clip), cfg)
    static = draw_static(room)
    objects = list(room.objects)
    frames = []
    for t, people in enumerate(states):
        scene = replace(room, people=tuple(p for p, _ in people))
        rel = f"images/{name}/{t:05d}.jpg"
        depth = draw_depth(scene) if cfg.depth else None
        _save(out, rel, draw_people(static, scene.people), depth, cfg.jpeg_quality)
        records = [person_record(cfg, p.head, g, objects, k, f"person{k + 1}") for k, (p, g) in enumerate(people)]
        frames.append(Frame(rel, cfg.width, cfg.height, records, frame_index=t, clip=name, root=out))
    return frames


def _run(func: Callable[[int], object], count: int, workers: int, progress: Progress | None) -> Iterator[object]:
    """``func`` over ``range(count)`` in order, in worker processes when ``workers > 1``."""
    results: Iterable[object]
    if workers > 1:
        pool = ProcessPoolExecutor(max_workers=workers)
        results = pool.map(func, range(count), chunksize=8)
    else:
        pool, results = None, map(func, range(count))
    try:
        for done, result in enumerate(results, start=1):
            if progress:
                progress(done, count)
            yield result
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise GazelabError(f"{out}: exists and is not a folder — choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / METADATA).is_file():
        raise GazelabError(f"{out}: folder is not empty and holds no {METADATA} — choose an empty or new folder")


def write_dataset(
    out: str | Path, cfg: SynthConfig, workers: int = 1, progress: Progress | None = None, preset_name: str = ""
) -> dict:
    """Generate and write a whole dataset under ``out``; returns the metadata also written to
    ``synthetic.json``. ``out`` must be new, empty, or an earlier synthetic dataset (files are overwritten;
    images beyond the new count stay on disk but are in no annotation file)."""
    cfg = cfg.validate()
    out = Path(out)
    _check_out(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.mode == "image":
        counts = _write_images(out, cfg, workers, progress)
    else:
        counts = _write_video(out, cfg, workers, progress)
    write_vocab([c.name for c in VOCABULARY], out / "vocab2id.json")
    metadata = _metadata(cfg, preset_name, counts)
    (out / METADATA).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return metadata


def _count(frames: list[Frame], unit: str = "images") -> dict[str, int]:
    people = [p for f in frames for p in f.people]
    return {
        unit: len(frames),
        "people": len(people),
        "out_of_frame": sum(p.inout is False for p in people),
        "annotations": sum(len(p.gaze) for p in people),
    }


def _write_images(out: Path, cfg: SynthConfig, workers: int, progress: Progress | None) -> dict:
    frames: list[Frame] = []
    objects = io.StringIO()
    writer = csv.writer(objects, lineterminator="\n")
    writer.writerow(("file_name", "object", "o_xmin", "o_ymin", "o_xmax", "o_ymax"))
    for frame, rows in _run(partial(_make_image, out, cfg), cfg.images, workers, progress):  # type: ignore[misc]
        frames.append(frame)
        writer.writerows(rows)
    (out / "objects.csv").write_text(objects.getvalue(), encoding="utf-8")
    counts = {}
    for split in ("train", "test"):
        part = [f for f in frames if f.path.startswith(split + "/")]
        write_gazefollow(part, out / f"{split}_annotations_release.txt", split=split)
        centred = [f.with_people([replace(p, gaze=(p.target_box.center,)) if p.target_box else p for p in f.people])
                   for f in part]  # fmt: skip
        write_gazehoi(centred, out / f"{split}-annotations.csv")
        counts[split] = _count(part)
    return counts


def _write_video(out: Path, cfg: SynthConfig, workers: int, progress: Progress | None) -> dict:
    splits: dict[str, list[Frame]] = {"train": [], "test": []}
    for clip, frames in enumerate(_run(partial(_make_clip, out, cfg), cfg.clips, workers, progress)):
        split = "test" if is_test(clip // cfg.clips_per_show, cfg.test_fraction) else "train"
        splits[split].extend(frames)  # type: ignore[arg-type]
    counts = {}
    for split, frames in splits.items():
        write_vat(frames, out, split)
        counts[split] = {**_count(frames, "frames"), "clips": len({f.clip for f in frames})}
    return counts


def _metadata(cfg: SynthConfig, preset_name: str, counts: dict) -> dict:
    """What was generated and how — enough to regenerate it. No timestamps: the file is part of the data."""
    overrides = {}
    if preset_name in PRESETS:
        base = asdict(PRESETS[preset_name])
        overrides = {k: v for k, v in asdict(cfg).items() if base[k] != v and k != "seed"}
    return {
        "generator": "gazelab.data.synthetic",
        "format_version": 1,
        "preset": preset_name or None,
        "overrides": overrides,
        "config": asdict(cfg),
        "vocabulary": [
            {
                "name": c.name,
                "id": i,
                "shape": c.shape,
                "colour": list(c.colour),
                "texture": c.texture,
                "aspect": c.aspect,
            }
            for i, c in enumerate(sorted(VOCABULARY, key=lambda c: c.name))
        ],  # fmt: skip
        "counts": counts,
        "depth": {"dir": DEPTH_DIR, "encoding": "uint16 PNG, value / 65535 = relative inverse depth, 1 = nearest"}
        if cfg.depth
        else None,
    }
