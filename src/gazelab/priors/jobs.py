"""Resumable prior generation: which people still need a prior, and writing results in shards as they come.

A job is a list of (frame, person index) pairs, minus those already in the store (so a rerun after a crash or
kill continues where it stopped), split between machines with ``--shard i/n`` by a stable hash of the image
path (every person of an image lands on the same machine; the assignment never depends on the file order).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

from gazelab.errors import GazelabError
from gazelab.priors.store import PriorRecord, PriorStore, person_key
from gazelab.types import Frame

Item = tuple[Frame, int]
"""One person: the frame and the person's index in ``frame.people``."""


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"i/n"`` (0 <= i < n) -> (i, n); None -> (0, 1), the whole job."""
    if text is None:
        return (0, 1)
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise GazelabError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= index < count:
        raise GazelabError(f"--shard {text}: need 0 <= i < n (shards are numbered from 0)")
    return (index, count)


def in_shard(image: str, shard: tuple[int, int]) -> bool:
    return zlib.crc32(image.encode()) % shard[1] == shard[0]


def pending(frames: Sequence[Frame], store: PriorStore, shard: tuple[int, int] = (0, 1)) -> list[Item]:
    """People of this shard that the store does not hold yet, in annotation order."""
    return [
        (frame, index)
        for frame in frames
        if in_shard(frame.path, shard)
        for index in range(len(frame.people))
        if person_key(frame, index) not in store
    ]


def run_job(
    items: Sequence[Item],
    produce: Callable[[Sequence[Item]], list[PriorRecord]],
    store: PriorStore,
    batch_size: int,
    flush_every: int,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Call ``produce`` on batches of ``items`` and append the records to ``store`` every ``flush_every``
    records (and at the end); returns the number written. A kill loses at most the unflushed records."""
    if batch_size < 1 or flush_every < 1:
        raise GazelabError("--batch-size and --flush-every must be at least 1")
    buffer: list[PriorRecord] = []
    written = 0
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        buffer.extend(produce(batch))
        if progress:
            progress(len(batch))
        if len(buffer) >= flush_every:
            store.write(buffer)
            written += len(buffer)
            buffer = []
    store.write(buffer)
    return written + len(buffer)
