"""The prior store: 64x64 gaze maps per (image, person) on disk, append-only and safe to interrupt.

Layout of a store folder::

    meta.json                 what made the maps (kind: gradcam | simulated | refined, parameters) — fixed at creation
    index.json                the shards that belong to the store, with record counts and sha256 checksums
    shards/shard-000000.safetensors ...

A shard holds one ``write()``: a float16 ``heatmaps`` tensor (N, 64, 64) and, in the safetensors header, the
records' keys, answers and validity. It is written under a temporary name and renamed into place, then
``index.json`` is replaced the same way, so a kill at any moment leaves a store that opens: a shard that was
not yet in the index is simply ignored (and overwritten by the next write). Writers hold an ``flock`` on
``.lock`` while appending, so processes on one machine may share a store; for many machines write one store
each (``--shard i/n``) and merge them. Writing a key again supersedes the earlier record (last write wins).

safetensors carries no code, unlike the pickle files of the reference implementation.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from gazelab.errors import GazelabError
from gazelab.train.atomic import write_atomic
from gazelab.types import Frame

SIZE = 64
FORMAT = "gazelab-prior-store"
VERSION = 1
META, INDEX, LOCK, SHARDS = "meta.json", "index.json", ".lock", "shards"
Key = tuple[str, int]
DAMAGED = "the store is damaged: restore the file from a copy, or rerun the job into a new folder"


@dataclass(frozen=True)
class PriorRecord:
    """One person's prior: a 64x64 map in [0, 1] (float16 on disk), the VQA answer, and whether it is usable."""

    image: str
    """Frame path as in the annotations (``Frame.path``, relative to the dataset root)."""
    person: int
    """``Person.person_id`` when it is an integer, else the index in ``Frame.people`` (see :func:`person_key`)."""
    heatmap: np.ndarray
    answer: str = ""
    """VQA answer text ("" for simulated or refined maps)."""
    valid: bool = True
    """False: no usable prior for this person (skip it as a target)."""

    @property
    def key(self) -> Key:
        return (self.image, self.person)


def person_key(frame: Frame, index: int) -> Key:
    """The (image, person) key used everywhere: the annotation's person id when it is an integer (GazeFollow
    ``idx``, synthetic data, GazeHOI ``pair_id``), otherwise the person's position in ``frame.people``."""
    pid = frame.people[index].person_id
    if pid is not None and pid.strip().lstrip("-").isdigit():
        return (frame.path, int(pid))
    return (frame.path, index)


@dataclass
class CheckReport:
    """Outcome of :meth:`PriorStore.check`: problems make the store unusable, warnings do not."""

    records: int = 0
    shards: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class _Shard:
    file: str
    sha256: str
    records: list[tuple[str, int, str, bool]]
    """(image, person, answer, valid) per row, from the shard header."""


def _normalise(meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON form of ``meta`` (tuples become lists), so a dict compares equal to its stored copy."""
    return json.loads(json.dumps(meta, sort_keys=True))


def _as_map(record: PriorRecord) -> np.ndarray:
    heatmap = np.asarray(record.heatmap, dtype=np.float32)
    if heatmap.shape != (SIZE, SIZE):
        raise ValueError(f"prior for {record.key}: heatmap must be {SIZE}x{SIZE}, got {heatmap.shape}")
    if not np.isfinite(heatmap).all() or heatmap.min() < -1e-3 or heatmap.max() > 1 + 1e-3:
        raise ValueError(f"prior for {record.key}: heatmap values must be finite and in [0, 1]")
    return np.clip(heatmap, 0.0, 1.0).astype(np.float16)


class PriorStore:
    """Read and append prior records (see the module docstring for the layout and guarantees).

    ``create=True`` makes the folder if needed; on an existing store it checks that ``meta`` (when given)
    equals the stored one, so a resumed job cannot silently mix parameters. ``create=False`` opens an existing
    store. Keys are ``(image, person)`` as made by :func:`person_key`.
    """

    def __init__(self, root: str | Path, *, create: bool = False, meta: dict | None = None) -> None:
        self.root = Path(root)
        meta_path = self.root / META
        if create:
            if self.root.exists() and not self.root.is_dir():
                raise GazelabError(f"{self.root}: exists and is not a folder — choose another store path")
            if self.root.is_dir() and not meta_path.is_file() and any(self.root.iterdir()):
                raise GazelabError(f"{self.root}: folder is not empty and is no prior store — choose another path")
            self.root.mkdir(parents=True, exist_ok=True)
            if not meta_path.is_file():  # first, so that a kill right after leaves a store, not a stray folder
                text = json.dumps(_normalise(meta or {}), indent=2, sort_keys=True) + "\n"
                write_atomic(meta_path, lambda out: out.write(text), mode="w")
            (self.root / SHARDS).mkdir(exist_ok=True)
        elif not meta_path.is_file():
            raise GazelabError(f"{self.root}: not a prior store (no {META}) — check the path")
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise GazelabError(f"{meta_path}: not valid JSON ({err}) — the store is damaged") from err
        if create and meta is not None and _normalise(meta) != self.meta:
            changed = sorted(k for k in set(meta) | set(self.meta) if _normalise(meta).get(k) != self.meta.get(k))
            raise GazelabError(f"{self.root}: existing store was made with other parameters ({', '.join(changed)}) "
                               "— use another output folder or the same options")  # fmt: skip
        self._handles: dict[int, Any] = {}
        self._load_index()

    # --- reading ---------------------------------------------------------------------------------------------

    def _read_index(self) -> list[dict[str, Any]]:
        path = self.root / INDEX
        if not path.is_file():
            return []
        try:
            index = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise GazelabError(f"{path}: not valid JSON ({err}) — the store is damaged") from err
        if index.get("format") != FORMAT or index.get("version") != VERSION:
            raise GazelabError(f"{path}: not a {FORMAT} v{VERSION} index — was it written by another tool?")
        return index["shards"]

    def _read_header(self, file: str) -> list[tuple[str, int, str, bool]]:
        path = self.root / file
        if not path.is_file():
            raise GazelabError(f"{path}: shard listed in {INDEX} is missing — {DAMAGED}")
        try:
            with safe_open(str(path), framework="numpy") as handle:
                rows = json.loads((handle.metadata() or {})["records"])
        except (SafetensorError, KeyError, json.JSONDecodeError) as err:
            raise GazelabError(f"{path}: unreadable shard ({err}) — {DAMAGED}") from err
        return [(str(image), int(person), str(answer), bool(valid)) for image, person, answer, valid in rows]

    def _load_index(self) -> None:
        self._shards: list[_Shard] = []
        self._where: dict[Key, tuple[int, int]] = {}
        self._handles.clear()
        for entry in self._read_index():
            self._add_shard(_Shard(entry["file"], entry["sha256"], self._read_header(entry["file"])))

    def _add_shard(self, shard: _Shard) -> None:
        number = len(self._shards)
        self._shards.append(shard)
        for row, (image, person, _, _) in enumerate(shard.records):
            self._where[(image, person)] = (number, row)

    def _handle(self, number: int) -> Any:
        if number not in self._handles:
            self._handles[number] = safe_open(str(self.root / self._shards[number].file), framework="numpy")
        return self._handles[number]

    def _record(self, number: int, row: int, heatmap: np.ndarray) -> PriorRecord:
        image, person, answer, valid = self._shards[number].records[row]
        return PriorRecord(image, person, heatmap, answer, valid)

    def get(self, image: str, person: int) -> PriorRecord | None:
        """The latest record for the key, or None when the store has none."""
        place = self._where.get((image, person))
        if place is None:
            return None
        number, row = place
        return self._record(number, row, self._handle(number).get_slice("heatmaps")[row])

    def __contains__(self, key: object) -> bool:
        return key in self._where

    def keys(self) -> set[Key]:
        return set(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def __iter__(self) -> Iterator[PriorRecord]:
        """Every current record, shard by shard (one read per shard); superseded records are skipped."""
        for number, shard in enumerate(self._shards):
            heatmaps = None
            for row, (image, person, _, _) in enumerate(shard.records):
                if self._where[(image, person)] != (number, row):
                    continue
                if heatmaps is None:
                    heatmaps = self._handle(number).get_tensor("heatmaps")
                yield self._record(number, row, heatmaps[row])

    def __getstate__(self) -> dict[str, Any]:
        # Open file handles do not travel to DataLoader workers; each process reopens the shards it reads.
        return {**self.__dict__, "_handles": {}}

    # --- writing ---------------------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.root / LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def write(self, records: Sequence[PriorRecord]) -> None:
        """Append ``records`` as one shard (atomic), then publish it in the index (atomic)."""
        if not records:
            return
        keys = [r.key for r in records]
        if len(set(keys)) != len(keys):
            raise ValueError("write(): the same (image, person) key appears twice in one batch")
        heatmaps = np.stack([_as_map(r) for r in records])
        rows = [[r.image, int(r.person), r.answer, bool(r.valid)] for r in records]
        data = save({"heatmaps": heatmaps}, metadata={"records": json.dumps(rows)})
        with self._locked():
            entries = self._read_index()
            if len(entries) != len(self._shards):  # another process appended since we last looked
                self._load_index()
            file = f"{SHARDS}/shard-{len(entries):06d}.safetensors"
            write_atomic(self.root / file, lambda out: out.write(data))
            entries.append({"file": file, "records": len(rows), "sha256": hashlib.sha256(data).hexdigest()})
            index = json.dumps({"format": FORMAT, "version": VERSION, "shards": entries}, indent=1) + "\n"
            write_atomic(self.root / INDEX, lambda out: out.write(index), mode="w")
        self._add_shard(_Shard(file, entries[-1]["sha256"], [tuple(r) for r in rows]))  # type: ignore[misc]

    # --- integrity -------------------------------------------------------------------------------------------

    def check(self) -> CheckReport:
        """Verify every indexed shard: checksum, header, tensor shape/dtype, values finite and in [0, 1].
        Shard files that no index entry names (left by a kill between the two renames) are warnings."""
        report = CheckReport(records=len(self), shards=len(self._shards))
        for shard in self._shards:
            path = self.root / shard.file
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != shard.sha256:
                report.problems.append(f"{path}: checksum differs from {INDEX} — the shard was changed or damaged")
                continue
            with safe_open(str(path), framework="numpy") as handle:
                heatmaps = handle.get_tensor("heatmaps")
            if heatmaps.dtype != np.float16 or heatmaps.shape != (len(shard.records), SIZE, SIZE):
                report.problems.append(f"{path}: heatmaps are {heatmaps.dtype} {heatmaps.shape}, expected "
                                       f"float16 ({len(shard.records)}, {SIZE}, {SIZE})")  # fmt: skip
            elif not np.isfinite(heatmaps).all() or heatmaps.min() < 0 or heatmaps.max() > 1:
                report.problems.append(f"{path}: heatmap values outside [0, 1] or not finite")
        listed = {s.file for s in self._shards}
        for path in sorted((self.root / SHARDS).glob("*")):
            name = f"{SHARDS}/{path.name}"
            if name not in listed:
                report.warnings.append(f"{path}: not in {INDEX} (an interrupted write) — ignored")
        return report


def merge_stores(sources: Sequence[PriorStore], out: str | Path, chunk: int = 4096) -> PriorStore:
    """Copy the records of ``sources`` (e.g. the ``--shard i/n`` parts of one job) into a new store ``out``.

    The sources must have the same ``meta``; a key held by two sources must hold the same record there
    (otherwise they come from different jobs and merging them would hide that)."""
    if not sources:
        raise GazelabError("merge needs at least one store")
    meta = sources[0].meta
    for other in sources[1:]:
        if other.meta != meta:
            raise GazelabError(f"{other.root}: made with other parameters than {sources[0].root} — cannot merge")
    target = PriorStore(out, create=True, meta=meta)
    seen = {key: _digest(target.get(*key)) for key in target.keys()}  # type: ignore[arg-type]
    buffer: list[PriorRecord] = []
    for store in sources:
        for record in store:
            digest = _digest(record)
            if record.key in seen:
                if seen[record.key] != digest:
                    raise GazelabError(f"{store.root}: record {record.key} differs from another store's — cannot merge")
                continue
            seen[record.key] = digest
            buffer.append(record)
            if len(buffer) >= chunk:
                target.write(buffer)
                buffer = []
    target.write(buffer)
    return target


def _digest(record: PriorRecord) -> str:
    """What identifies a record's content (merge compares these instead of keeping every map in memory)."""
    content = hashlib.sha256(np.ascontiguousarray(record.heatmap, dtype=np.float16).tobytes())
    content.update(json.dumps([record.answer, record.valid]).encode())
    return content.hexdigest()
