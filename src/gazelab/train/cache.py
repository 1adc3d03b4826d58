"""On-disk cache of frozen-backbone features, so a decoder trains without running the backbone every step.

Gaze-LLE trains a small decoder on a frozen DINOv2: recomputing the ViT for every (image, head) sample is
almost all of the cost. The features of an image depend only on the image, its preprocessing and the
backbone weights, so they are computed once per *view* (the image, and its mirror for the flip augmentation)
and read back from disk afterwards.

Layout of a cache folder (one per backbone and preprocessing, see :func:`cache_fingerprint`)::

    <root>/<fingerprint digest>/
        meta.json                 what the fingerprint stands for (readable, for people)
        shards/<part>-<n>.npy     [rows, C, h, w] features of many views (float32 or float16)
        shards/<part>-<n>.json    the shard's index: entry key -> [row, image width, image height]

Each writer (one per DDP process and build) names its shards with its own ``part``. A shard's array is written
to a temporary file and renamed into place, then its index the same way: an index exists only for a complete
shard, so a crash loses at most the shard in progress, and a rebuild computes only what no index lists. An
entry key hashes the image's path, size and modification time and the view, so an edited image is
recomputed. Nothing is pickled: ``.npy`` arrays are read with ``allow_pickle=False`` and memory-mapped, the
index is JSON.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as F

from gazelab.errors import GazelabError
from gazelab.io import load_image
from gazelab.models.base import GazeModel
from gazelab.train.atomic import write_atomic
from gazelab.types import Frame

CACHE_VERSION = 1
SHARD_BYTES = 256 << 20
"""Target size of one shard: big enough for few files, small enough to build in memory."""
DTYPES = {"float32": np.float32, "float16": np.float16}

View = tuple[Frame, bool]
"""An image and whether it is mirrored."""


def weights_digest(module: torch.nn.Module) -> str:
    """A digest of every tensor of ``module`` (names, shapes, dtypes and bytes): which weights made a feature."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in module.state_dict().items():
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(data.shape)}:{data.dtype};".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cache_fingerprint(model: GazeModel, image_size: int | tuple[int, int] | None, dtype: str) -> dict[str, Any]:
    """Everything a cached feature depends on besides the image: family, backbone architecture and weights,
    the dataset's resize and the model's input size, and the storage precision."""
    backbone = model.backbone
    cfg = getattr(model, "cfg", None)
    return {
        "version": CACHE_VERSION,
        "family": type(model).__name__,
        "backbone": repr(getattr(backbone, "cfg", type(backbone).__name__)),
        "weights": weights_digest(backbone),
        "dataset_image_size": image_size,
        "model_input_size": getattr(cfg, "in_size", None),
        "dtype": dtype,
    }


def view_key(frame: Frame, flip: bool) -> str:
    """Key of one view: the image path as annotated, its file size and mtime (an edit changes it), the mirror."""
    stat = frame.image_path.stat()
    text = f"{frame.path}|{stat.st_size}|{stat.st_mtime_ns}|{'flip' if flip else 'orig'}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class _Views(Dataset):
    """Loads views as the training datasets do (mirror first, then resize) so features match exactly."""

    def __init__(self, views: Sequence[View], image_size: int | tuple[int, int] | None) -> None:
        self.views = list(views)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, index: int) -> tuple[Tensor, int, int]:
        frame, flip = self.views[index]
        image = F.pil_to_tensor(load_image(frame.image_path))
        height, width = image.shape[-2:]
        if flip:
            image = F.horizontal_flip(image)
        if self.image_size is not None:
            size = self.image_size
            image = F.resize(image, [size, size] if isinstance(size, int) else list(size), antialias=True)
        return image, width, height


class FeatureCache:
    """A cache folder for one fingerprint; :meth:`build` fills it, :meth:`features` reads one view."""

    def __init__(self, root: str | Path, fingerprint: dict[str, Any]) -> None:
        digest = hashlib.blake2b(json.dumps(fingerprint, sort_keys=True).encode(), digest_size=12).hexdigest()
        self.dir = Path(root) / digest
        self.fingerprint = fingerprint
        self.dtype = DTYPES[fingerprint["dtype"]]
        self.entries: dict[str, tuple[str, int, int, int]] = {}
        self._shards: dict[str, np.ndarray] = {}

    def reload(self) -> FeatureCache:
        """Read every shard's index (shards written by other processes included)."""
        self.entries = {}
        for index in sorted((self.dir / "shards").glob("*.json")):
            file = index.with_suffix(".npy").name
            for key, (row, width, height) in json.loads(index.read_text(encoding="utf-8")).items():
                self.entries[key] = (file, row, width, height)
        return self

    def missing(self, views: Iterable[View]) -> list[View]:
        """The views without an entry, each once, in order."""
        seen: set[str] = set()
        todo = []
        for frame, flip in views:
            key = view_key(frame, flip)
            if key not in self.entries and key not in seen:
                seen.add(key)
                todo.append((frame, flip))
        return todo

    def build(
        self,
        model: GazeModel,
        views: Sequence[View],
        batch_size: int = 32,
        num_workers: int = 0,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Compute and store the features of ``views`` (already-cached ones are skipped); returns how many."""
        views = self.missing(views)
        if not views:
            return 0
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "meta.json"
        if not meta.exists():
            write_atomic(meta, lambda f: f.write(json.dumps(self.fingerprint, indent=2) + "\n"), mode="w")
        writer = _PartWriter(self.dir)
        pending: list[tuple[str, np.ndarray, int, int]] = []
        shard_rows: int | None = None
        loader = DataLoader(
            _Views(views, self.fingerprint["dataset_image_size"]),
            batch_size=batch_size,
            num_workers=num_workers,
            generator=torch.Generator(),  # drawing worker seeds from it leaves the global random state alone
        )
        done = 0
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                for images, widths, heights in loader:
                    features = model.encode(model.prepare_images(images)).cpu().numpy().astype(self.dtype)
                    shard_rows = shard_rows or max(1, SHARD_BYTES // features[0].nbytes)
                    for row, (w, h) in enumerate(zip(widths.tolist(), heights.tolist())):
                        frame, flip = views[done + row]
                        pending.append((view_key(frame, flip), features[row], w, h))
                    done += len(features)
                    while len(pending) >= shard_rows or (pending and done == len(views)):
                        writer.write(pending[:shard_rows])
                        pending = pending[shard_rows:]
                    if progress is not None:
                        progress(len(features))
        finally:
            model.train(was_training)
        self.entries.update(writer.index)
        return done

    def _entry(self, frame: Frame, flip: bool) -> tuple[str, int, int, int]:
        try:
            return self.entries[view_key(frame, flip)]
        except KeyError:
            raise GazelabError(
                f"{frame.path} ({'mirrored' if flip else 'original'}): not in the feature cache {self.dir} — "
                "build it first (it is built when training starts)"
            ) from None

    def image_size(self, frame: Frame) -> tuple[int, int]:
        """(width, height) of the original image, known without opening it."""
        _, _, width, height = self._entry(frame, False)
        return width, height

    def features(self, frame: Frame, flip: bool) -> Tensor:
        """The cached features of one view as a float32 tensor."""
        file, row, _, _ = self._entry(frame, flip)
        shard = self._shards.get(file)
        if shard is None:
            shard = self._shards[file] = np.load(self.dir / "shards" / file, mmap_mode="r", allow_pickle=False)
        return torch.from_numpy(np.array(shard[row], dtype=np.float32))

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers re-open the memory maps themselves.
        return {**self.__dict__, "_shards": {}}


class _PartWriter:
    """One writer's shards: the array first, then its index, each renamed into place when complete."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory / "shards"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.part = uuid.uuid4().hex[:12]
        self.shards = 0
        self.index: dict[str, tuple[str, int, int, int]] = {}

    def write(self, items: list[tuple[str, np.ndarray, int, int]]) -> None:
        name = f"{self.part}-{self.shards:05d}"
        array = np.stack([features for _, features, _, _ in items])
        write_atomic(self.dir / f"{name}.npy", lambda f: np.save(f, array, allow_pickle=False))
        text = json.dumps({key: (row, w, h) for row, (key, _, w, h) in enumerate(items)})
        write_atomic(self.dir / f"{name}.json", lambda f: f.write(text), mode="w")
        self.shards += 1
        self.index.update({key: (f"{name}.npy", row, w, h) for row, (key, _, w, h) in enumerate(items)})
