"""Property tests (hypothesis) of the annotation readers on random and mutated input.

Whatever the bytes, a reader either returns annotations whose report accounts for every row (read = kept +
skipped) or raises a :class:`GazelabError` — never another exception. On generated GazeFollow rows with a
known number of corrupted fields, exactly the corrupted rows are skipped, under the expected reason.

CI runs a few dozen examples per property; a long run (see docs/reliability.md) raises the count:
``GAZELAB_FUZZ_EXAMPLES=20000 pytest -p no:randomly tests/test_fuzz_readers.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gazelab.data.formats import read_gazefollow, read_gazehoi, read_gazelle_json
from gazelab.data.report import Annotations
from gazelab.errors import GazelabError

FUZZ = settings(
    max_examples=int(os.environ.get("GAZELAB_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=os.environ.get("GAZELAB_FUZZ_EXAMPLES") is None,  # CI: the same examples on every run
)

VALID_GAZEFOLLOW = (
    "img/a.jpg,1,0.1,0.1,0.3,0.5,0.25,0.2,0.6,0.7,10,12,40,45,1,src,meta\n"
    "img/a.jpg,1,0.1,0.1,0.3,0.5,0.25,0.2,0.61,0.69,10,12,40,45,1,src,meta\n"
    "img/b.jpg,2,0,0,0,0,0.5,0.3,-1,-1,100,20,150,80,0,src,meta\n"
)
HOI_HEADER = "file_name,pair_id,object,aux_object,o_xmin,o_ymin,o_xmax,o_ymax,oc_x,oc_y,h_xmin,h_ymin,h_xmax,h_ymax\n"
VALID_GAZEHOI = HOI_HEADER + "img/a.jpg,1,cup,\"['mug']\",40,20,60,40,50,30,10,10,30,30\n"
VALID_GAZELLE = json.dumps([
    {"path": "img/a.jpg", "width": 80, "height": 60, "heads": [
        {"bbox": [10, 10, 30, 30], "gazex_norm": [0.5, 0.6], "gazey_norm": [0.5, 0.4], "inout": 1},
        {"bbox": [40, 10, 60, 30], "gazex_norm": [], "gazey_norm": [], "inout": 0}]},
])  # fmt: skip

Reader = Callable[[Path], Annotations]
READERS: dict[str, tuple[str, Reader]] = {
    "gazefollow": ("ann.txt", lambda p: read_gazefollow(p, check_images=False)),
    "gazehoi": ("ann.csv", lambda p: read_gazehoi(p, check_images=False)),
    "gazelle-json": ("ann.json", read_gazelle_json),
}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def read_or_refuse(work: Path, format: str, content: bytes) -> Annotations | None:
    """Read ``content`` as ``format``; None when refused with a GazelabError (any other exception propagates)."""
    name, reader = READERS[format]
    path = work / f"{format}-{name}"
    path.write_bytes(content)
    try:
        annotations = reader(path)
    except GazelabError as err:
        assert "\n" not in str(err) and str(path) in str(err)
        return None
    report = annotations.report
    assert report.rows_read == report.rows_kept + report.rows_skipped
    assert report.rows_kept == sum(len(f.people) for f in annotations) or format == "gazefollow"
    return annotations


@FUZZ
@given(format=st.sampled_from(sorted(READERS)), content=st.binary(max_size=3000))
def test_random_bytes_are_read_or_refused(work: Path, format: str, content: bytes) -> None:
    read_or_refuse(work, format, content)


def _mutate(text: str, edits: list[tuple[int, int, str]]) -> bytes:
    data = text
    for position, delete, insert in edits:
        at = position % (len(data) + 1)
        data = data[:at] + insert + data[at + delete :]
    return data.encode("utf-8", errors="surrogatepass")


MUTATIONS = st.lists(
    st.tuples(
        st.integers(0, 10_000),
        st.integers(0, 8),
        st.one_of(st.sampled_from(["", ",", "\n", "\r", '"', "nan", "-inf", "1e999", "-1", "../", "[", "{", "\x00"]),
                  st.text(max_size=8)),
    ),
    min_size=1,
    max_size=8,
)  # fmt: skip


@FUZZ
@given(format=st.sampled_from(sorted(READERS)), edits=MUTATIONS)
def test_mutated_valid_files_are_read_or_refused(work: Path, format: str, edits: list[tuple[int, int, str]]) -> None:
    valid = {"gazefollow": VALID_GAZEFOLLOW, "gazehoi": VALID_GAZEHOI, "gazelle-json": VALID_GAZELLE}[format]
    read_or_refuse(work, format, _mutate(valid, edits))


@FUZZ
@given(value=st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["path", "width", "height", "heads", "bbox", "gazex_norm", "gazey_norm", "inout"]), inner,
        max_size=6),
    max_leaves=30,
))  # fmt: skip
def test_any_json_value_is_read_or_refused(work: Path, value: object) -> None:
    read_or_refuse(work, "gazelle-json", json.dumps(value).encode())


# ----------------------------------------------------------------- generated rows with a known answer

CORRUPTIONS = {
    "nan": ("non-finite value", lambda row: _set(row, 6, "nan")),
    "inf": ("non-finite value", lambda row: _set(row, 9, "inf")),
    "text": ("malformed row", lambda row: _set(row, 11, "abc")),
    "empty field": ("malformed row", lambda row: _set(row, 2, "")),
    "inverted box": ("inverted head box", lambda row: _set(_set(row, 10, "90"), 12, "20")),
    "gaze outside": ("gaze outside image while in frame", lambda row: _set(row, 8, "1.5")),
    "invalid inout": ("invalid inout (-1)", lambda row: _set(row, 14, "-1")),
    "escaping path": ("path escapes dataset root", lambda row: _set(row, 0, "../x.jpg")),
}


def _set(row: list[str], index: int, value: str) -> list[str]:
    return [*row[:index], value, *row[index + 1 :]]


ROWS = st.lists(
    st.tuples(
        st.floats(0, 1), st.floats(0, 1), st.integers(0, 300), st.integers(0, 300), st.integers(1, 50),
        st.integers(1, 50), st.sampled_from([None, *CORRUPTIONS]),
    ),
    min_size=1,
    max_size=30,
)  # fmt: skip


@FUZZ
@given(rows=ROWS)
def test_exactly_the_corrupted_gazefollow_rows_are_skipped(work: Path, rows: list[tuple]) -> None:
    lines, expected = [], {}
    for index, (gx, gy, x, y, w, h, corruption) in enumerate(rows):
        row = [f"img/{index % 5}.jpg", str(index), "0", "0", "0", "0", f"{index / 100:.2f}", "0.5", repr(gx),
               repr(gy), str(x), str(y), str(x + w), str(y + h), "1", "src", "meta"]  # fmt: skip
        if corruption is not None:
            reason, corrupt = CORRUPTIONS[corruption]
            row = corrupt(row)
            expected[reason] = expected.get(reason, 0) + 1
        lines.append(",".join(row))
    annotations = read_or_refuse(work, "gazefollow", ("\n".join(lines) + "\n").encode())
    assert annotations is not None
    report = annotations.report
    assert report.rows_read == len(rows)
    assert dict(report.skipped) == expected
    assert report.rows_kept == len(rows) - sum(expected.values()) == sum(len(f.people) for f in annotations)
