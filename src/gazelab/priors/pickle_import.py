"""Import the Grad-CAM pickle of the GCDR reference implementation (only when the user trusts the file).

Assumed layout — that of the reference's GazeFollow script (``gradcams_train_person.pkl``)::

    {image file name: {eye_x: {"answer": str, "tokens": ..., "9th_layer": map, "10th_layer": map,
                               "11th_layer": map}}}

The image is named by its file name alone (GazeFollow file names are unique) and the person by the
normalized x of their eye, as in GazeFollow's annotation rows; a map is the 30x30 OFA patch grid (numpy array
or torch tensor). GCDR used ``10th_layer``. People are matched to an annotation file's frames by file name and
eye x (within ``EYE_TOLERANCE``); maps are bilinearly resized to 64x64 and min-max normalised (a flat map is
stored as invalid). Unpickling can run code, hence the explicit trust flag of the command.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from gazelab.errors import GazelabError
from gazelab.priors.gradcam import grid_heatmaps
from gazelab.priors.store import PriorRecord, PriorStore, person_key
from gazelab.types import Frame

LAYERS = ("9th_layer", "10th_layer", "11th_layer")
EYE_TOLERANCE = 1e-4


def _as_grid(value: object, where: str) -> np.ndarray:
    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    array = np.squeeze(array).astype(np.float32)
    if array.ndim != 2 or array.shape[0] != array.shape[1] or not np.isfinite(array).all():
        raise GazelabError(f"{where}: expected a square finite Grad-CAM map, got shape {array.shape}")
    return array


def _heatmap(grid: np.ndarray) -> tuple[np.ndarray, bool]:
    flat = torch.from_numpy(grid).reshape(1, -1)
    maps, valid = grid_heatmaps(flat, prefix_tokens=0)
    return maps[0].numpy().astype(np.float16), bool(valid[0])


def reference_records(data: dict, frames: Sequence[Frame], layer: str, source: str) -> tuple[list[PriorRecord], int]:
    """Records for the people of ``frames`` found in the reference dict, and how many entries matched nobody."""
    if layer not in LAYERS:
        raise GazelabError(f"--layer must be one of {', '.join(LAYERS)}, got {layer!r}")
    people: dict[str, list[tuple[float, Frame, int]]] = {}
    for frame in frames:
        for index, person in enumerate(frame.people):
            if person.eye is not None:
                people.setdefault(PurePosixPath(frame.path).name, []).append((person.eye[0], frame, index))
    records: list[PriorRecord] = []
    unmatched = 0
    for name, by_eye in data.items():
        if not isinstance(by_eye, dict):
            raise GazelabError(f"{source}: entry {name!r} is not a dict keyed by eye x — not the reference layout")
        for eye_x, entry in by_eye.items():
            candidates = people.get(PurePosixPath(str(name)).name, [])
            match = [(f, i) for x, f, i in candidates if abs(x - float(eye_x)) <= EYE_TOLERANCE]
            if not match:
                unmatched += 1
                continue
            if layer not in entry:
                raise GazelabError(f"{source}: entry {name!r}/{eye_x} has no {layer!r} map")
            heatmap, valid = _heatmap(_as_grid(entry[layer], f"{source}: {name!r}/{eye_x}"))
            image, pid = person_key(*match[0])
            records.append(PriorRecord(image, pid, heatmap, str(entry.get("answer", "")).strip(), valid))
    return records, unmatched


def import_reference_pickle(
    file: str | Path, frames: Sequence[Frame], out: str | Path, layer: str = "10th_layer"
) -> tuple[PriorStore, int]:
    """Convert a trusted reference pickle into a new store at ``out``; returns it and the unmatched count."""
    file = Path(file)
    if not file.is_file():
        raise GazelabError(f"{file}: no such file")
    with file.open("rb") as handle:
        try:
            data = pickle.load(handle)  # noqa: S301 - only behind --trust-pickle
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as err:
            raise GazelabError(f"{file}: not a readable pickle ({err})") from err
    if not isinstance(data, dict):
        raise GazelabError(f"{file}: holds a {type(data).__name__}, not the reference's dict of images")
    records, unmatched = reference_records(data, frames, layer, str(file))
    store = PriorStore(out, create=True, meta={"kind": "gradcam", "source": "gcdr-reference-pickle", "layer": layer})
    unique = {r.key: r for r in records}
    store.write(list(unique.values()))
    return store, unmatched
