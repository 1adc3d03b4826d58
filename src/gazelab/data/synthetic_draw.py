"""Drawing of synthetic scenes: the object vocabulary, textured backgrounds, objects, people and depth.

Everything here is a pure function of a :class:`Scene` (all randomness is drawn by
:mod:`gazelab.data.synthetic` before drawing), so a scene can be re-drawn without some of its parts — the
tests use that to check that people are drawn exactly where their boxes say.

The gaze cue a model can learn from: a head is a hair-coloured ellipse filling the head box; the face (a
skin ellipse), the eyes, the pupils and the nose are shifted toward where the person looks, so hair shows on
the far side, and the nose points along the gaze. A person looking at the camera (out of frame) has the face
centred.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

Colour = tuple[int, int, int]
PixelBox = tuple[int, int, int, int]
"""Integer pixel box ``(x1, y1, x2, y2)``, end exclusive: the drawn pixels are ``[x1, x2) x [y1, y2)``."""


@dataclass(frozen=True)
class ObjectClass:
    """One named object class; the (shape, colour, texture) triple tells it apart from every other class."""

    name: str
    shape: str
    colour: Colour
    texture: str
    aspect: float
    """Width / height of its box."""


VOCABULARY: tuple[ObjectClass, ...] = (
    ObjectClass("ball", "ellipse", (215, 35, 35), "solid", 1.0),
    ObjectClass("book", "rectangle", (35, 75, 205), "stripes", 1.45),
    ObjectClass("bottle", "rectangle", (30, 150, 60), "gradient", 0.45),
    ObjectClass("clock", "ellipse", (240, 240, 232), "rim", 1.0),
    ObjectClass("cup", "trapezoid", (240, 130, 20), "solid", 0.85),
    ObjectClass("lamp", "triangle", (245, 215, 30), "gradient", 0.9),
    ObjectClass("laptop", "rectangle", (135, 135, 145), "checker", 1.5),
    ObjectClass("painting", "rectangle", (120, 70, 30), "frame", 1.25),
    ObjectClass("phone", "rectangle", (22, 22, 28), "solid", 0.5),
    ObjectClass("pillow", "ellipse", (235, 120, 185), "dots", 1.5),
    ObjectClass("plant", "diamond", (20, 110, 45), "dots", 0.8),
    ObjectClass("vase", "hexagon", (140, 50, 175), "bands", 0.7),
)


@dataclass(frozen=True)
class SceneObject:
    cls: ObjectClass
    box: PixelBox
    colour: Colour
    """The class colour with a small per-instance jitter."""


@dataclass(frozen=True)
class ScenePerson:
    head: PixelBox
    direction: tuple[float, float]
    """Drawn face offset: unit gaze direction (image plane) times the cue strength; (0, 0) = facing the camera."""
    skin: Colour
    hair: Colour
    shirt: Colour


@dataclass(frozen=True)
class Background:
    """Parameters of the textured room behind everything (the pixels are made by :func:`draw_background`)."""

    horizon: int
    wall: Colour
    floor: Colour
    coarse: np.ndarray
    """Low-frequency colour variation, a small [gh, gw, 3] float grid upsampled over the image."""
    grain_seed: int
    stripes: int
    """Period of faint wallpaper stripes in px (0 = plain wall)."""
    tile: int
    """Floor tile size in px."""
    clutter: tuple[tuple[PixelBox, Colour], ...]
    """Low-contrast furniture rectangles: structure that is not a gaze target."""
    grain: float


@dataclass(frozen=True)
class Scene:
    width: int
    height: int
    background: Background
    objects: tuple[SceneObject, ...]
    people: tuple[ScenePerson, ...]


def muted_colour(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]) -> Colour:
    """A random colour of limited saturation — backgrounds and clothes stay apart from the vivid objects."""
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val))
    return (round(r * 255), round(g * 255), round(b * 255))


def _shade(colour: Colour, factor: float) -> Colour:
    return tuple(int(min(255, max(0, round(c * factor)))) for c in colour)  # type: ignore[return-value]


# --- background ------------------------------------------------------------------------------------------


def draw_background(bg: Background, width: int, height: int) -> np.ndarray:
    """The room as an [H, W, 3] uint8 array: wall above the horizon, tiled floor below, smooth colour
    variation, low-contrast clutter and grain — texture that a model has to learn to ignore."""
    base = np.empty((height, width, 3), np.float32)
    base[: bg.horizon] = bg.wall
    base[bg.horizon :] = bg.floor
    ys, xs = np.arange(height), np.arange(width)
    if bg.stripes:
        wall_stripes = ((xs // bg.stripes) % 2 == 0).astype(np.float32) * 10.0
        base[: bg.horizon] += wall_stripes[None, :, None]
    floor_rows = ys[bg.horizon :, None]
    grid = ((floor_rows - bg.horizon) % bg.tile == 0) | (xs[None, :] % bg.tile == 0)
    base[bg.horizon :][grid] *= 0.85
    coarse = Image.fromarray(np.clip(bg.coarse * 22 + 128, 0, 255).astype(np.uint8))
    base += np.asarray(coarse.resize((width, height), Image.BILINEAR), np.float32) - 128
    for (x1, y1, x2, y2), colour in bg.clutter:
        base[y1:y2, x1:x2] = 0.6 * base[y1:y2, x1:x2] + 0.4 * np.asarray(colour, np.float32)
    grain = np.random.default_rng(bg.grain_seed).standard_normal((height, width, 1), dtype=np.float32)
    base += grain * bg.grain
    return np.clip(base + 0.5, 0, 255).astype(np.uint8)


# --- objects ---------------------------------------------------------------------------------------------


def _shape_mask(shape: str, w: int, h: int) -> Image.Image:
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    r, b = w - 1, h - 1
    if shape == "ellipse":
        draw.ellipse((0, 0, r, b), fill=255)
    elif shape == "rectangle":
        draw.rounded_rectangle((0, 0, r, b), radius=max(1, min(w, h) // 8), fill=255)
    elif shape == "trapezoid":
        draw.polygon([(0, 0), (r, 0), (0.8 * r, b), (0.2 * r, b)], fill=255)
    elif shape == "triangle":
        draw.polygon([(r / 2, 0), (r, b), (0, b)], fill=255)
    elif shape == "diamond":
        draw.polygon([(r / 2, 0), (r, b / 2), (r / 2, b), (0, b / 2)], fill=255)
    elif shape == "hexagon":
        draw.polygon([(0.25 * r, 0), (0.75 * r, 0), (r, b / 2), (0.75 * r, b), (0.25 * r, b), (0, b / 2)], fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return mask


def _texture(texture: str, colour: Colour, w: int, h: int) -> np.ndarray:
    c = np.asarray(colour, np.float32)
    dark = c * 0.55
    ys, xs = np.mgrid[0:h, 0:w]
    patch = np.broadcast_to(c, (h, w, 3)).copy()
    if texture == "stripes":
        patch[(ys // max(2, h // 6)) % 2 == 1] = dark
    elif texture == "bands":
        patch[(xs // max(2, w // 5)) % 2 == 1] = dark
    elif texture == "checker":
        cell = max(2, min(w, h) // 4)
        patch[((xs // cell) + (ys // cell)) % 2 == 1] = dark
    elif texture == "dots":
        step = max(4, min(w, h) // 4)
        dots = ((xs % step) - step // 2) ** 2 + ((ys % step) - step // 2) ** 2 <= (step // 4) ** 2
        patch[dots] = np.minimum(c * 0.5 + 150, 255)
    elif texture == "gradient":
        patch *= np.linspace(1.2, 0.6, h, dtype=np.float32)[:, None, None]
    elif texture == "rim":
        rim = max(2, min(w, h) // 7)
        inner = ((xs - w / 2) / (w / 2 - rim)) ** 2 + ((ys - h / 2) / (h / 2 - rim)) ** 2 > 1
        patch[inner] = (30, 30, 30)
        hands = ((xs == w // 2) & (ys > h // 4) & (ys <= h // 2)) | (
            (ys == h // 2) & (xs >= w // 2) & (xs < 3 * w // 4)
        )
        patch[hands] = (30, 30, 30)
    elif texture == "frame":
        rim = max(2, min(w, h) // 6)
        inside = (xs >= rim) & (xs < w - rim) & (ys >= rim) & (ys < h - rim)
        patch[inside] = (90, 170, 230)
        patch[inside & (ys > h * 0.55)] = (60, 160, 70)
    elif texture != "solid":
        raise ValueError(f"unknown texture {texture!r}")
    return np.clip(patch + 0.5, 0, 255).astype(np.uint8)


def draw_object(image: Image.Image, obj: SceneObject) -> None:
    x1, y1, x2, y2 = obj.box
    w, h = x2 - x1, y2 - y1
    mask = _shape_mask(obj.cls.shape, w, h)
    patch = Image.fromarray(_texture(obj.cls.texture, obj.colour, w, h))
    image.paste(patch, (x1, y1), mask)


# --- people ----------------------------------------------------------------------------------------------


def body_box(head: PixelBox) -> PixelBox:
    """Torso below the head (may leave the image at the bottom): 1.3 head widths wide, 1.7 heads tall."""
    x1, y1, x2, y2 = head
    w, h = x2 - x1, y2 - y1
    cx = (x1 + x2) / 2
    return (round(cx - 0.65 * w), y2 - round(0.1 * h), round(cx + 0.65 * w), y2 + round(1.7 * h))


def eye_point(head: PixelBox, direction: tuple[float, float]) -> tuple[float, float]:
    """Midpoint between the drawn eyes, in px (the GazeFollow ``eye`` annotation)."""
    x1, y1, x2, y2 = head
    w, h = x2 - x1, y2 - y1
    return (x1 + w / 2 + direction[0] * 0.25 * w, y1 + h / 2 - 0.04 * h + direction[1] * 0.25 * w)


def draw_person(draw: ImageDraw.ImageDraw, person: ScenePerson) -> None:
    x1, y1, x2, y2 = person.head
    w, h = x2 - x1, y2 - y1
    dx, dy = person.direction
    bx1, by1, bx2, by2 = body_box(person.head)
    draw.rounded_rectangle((bx1, by1, bx2 - 1, by2 - 1), radius=max(2, w // 3), fill=person.shirt)
    draw.rectangle((round(x1 + 0.35 * w), y2 - round(0.2 * h), round(x2 - 0.35 * w), by1 + 1), fill=person.skin)
    draw.ellipse((x1, y1, x2 - 1, y2 - 1), fill=person.hair)
    fx, fy = x1 + w / 2 + dx * 0.13 * w, y1 + h / 2 + dy * 0.13 * w
    rx, ry = 0.36 * w, 0.36 * h
    draw.ellipse((fx - rx, fy - ry, fx + rx - 1, fy + ry - 1), fill=person.skin)
    ex, ey = eye_point(person.head, person.direction)
    er, pr = max(1.5, 0.085 * w), max(1.0, 0.05 * w)
    for side in (-1, 1):
        cx = ex + side * 0.16 * w
        draw.ellipse((cx - er, ey - er, cx + er, ey + er), fill=(245, 245, 245))
        px, py = cx + dx * 0.4 * er, ey + dy * 0.4 * er
        draw.ellipse((px - pr, py - pr, px + pr, py + pr), fill=(20, 20, 20))
    nx, ny = ex, ey + 0.1 * h
    draw.line((nx, ny, nx + dx * 0.22 * w, ny + dy * 0.22 * w), fill=_shade(person.skin, 0.6), width=max(2, w // 10))


# --- whole scene -----------------------------------------------------------------------------------------


def draw_static(scene: Scene) -> Image.Image:
    """Background and objects — everything that stays still over a video clip."""
    image = Image.fromarray(draw_background(scene.background, scene.width, scene.height))
    for obj in scene.objects:
        draw_object(image, obj)
    return image


def draw_people(static: Image.Image, people: tuple[ScenePerson, ...]) -> Image.Image:
    image = static.copy()
    draw = ImageDraw.Draw(image)
    for person in people:
        draw_person(draw, person)
    return image


def draw_scene(scene: Scene) -> Image.Image:
    return draw_people(draw_static(scene), scene.people)


def draw_depth(scene: Scene) -> np.ndarray:
    """A 16-bit depth map (uint16 [H, W]): MiDaS-style relative inverse depth, 65535 = nearest.

    The room is a camera looking level at a floor: the wall is far, the floor comes nearer toward the bottom
    row, and every object or person stands at the floor depth of its own bottom edge.
    """
    height, width, horizon = scene.height, scene.width, scene.background.horizon
    far = 0.08

    def nearness(row: int) -> float:
        if row <= horizon:
            return far
        return far + (1 - far) * (min(row, height - 1) - horizon) / max(1, height - 1 - horizon)

    rows = np.array([nearness(r) for r in range(height)], np.float64)
    depth = Image.fromarray(np.repeat(rows[:, None], width, axis=1).astype(np.float32), mode="F")
    for obj in scene.objects:
        x1, y1, x2, y2 = obj.box
        depth.paste(nearness(y2 - 1), (x1, y1, x2, y2), _shape_mask(obj.cls.shape, x2 - x1, y2 - y1))
    draw = ImageDraw.Draw(depth)
    for person in scene.people:
        bx1, by1, bx2, by2 = body_box(person.head)
        value = nearness(by2 - 1)
        draw.rounded_rectangle((bx1, by1, bx2 - 1, by2 - 1), radius=max(2, (bx2 - bx1) // 4), fill=value)
        hx1, hy1, hx2, hy2 = person.head
        draw.ellipse((hx1, hy1, hx2 - 1, hy2 - 1), fill=value)
    return np.clip(np.asarray(depth, np.float64) * 65535 + 0.5, 0, 65535).astype(np.uint16)
