"""SemGaze's semantic labels for GazeFollow: ``gaze-labels-{split}.csv``, merged into the people of an annotation file.

GazeFollow's annotations say where people look, not at what; SemGaze released a label per person separately
(vocabulary of 346 classes, ``vocab2id.json``). Two layouts, recognised from the header:

- train/val: ``path``, ``id``, ``gaze_pseudo_label``, ``label_id`` (other columns ignored). A row labels the
  person with the same image path and ``id`` (the annotation's second column); an empty label = none.
- test: ``path``, ``gaze_gt_label``, ``gaze_gt_labels`` (every acceptable label, ``a-b-c``, split at every
  ``-`` as SemGaze does), ``test_label_id``. A row labels the people of its image (one per GazeFollow test
  image); ``test_label_id`` -1 = no label (SemGaze's evaluation ignores those people).

Like SemGaze's left merge, people without a row keep no label (the label loss and metrics skip them).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from gazelab.data.formats._common import csv_error, require_file
from gazelab.data.report import Annotations
from gazelab.errors import DataError
from gazelab.types import Frame

TRAIN_COLUMNS = ("path", "id", "gaze_pseudo_label", "label_id")
TEST_COLUMNS = ("path", "gaze_gt_label", "gaze_gt_labels", "test_label_id")


@dataclass
class GazeFollowLabels:
    """Labels of one file: main label first, every acceptable one after (``()``: a row without a label)."""

    source: str
    by_image: bool
    """Test layout: rows are keyed by image path; train/val: by ``(path, id)``."""
    table: dict[str | tuple[str, str], tuple[str, ...]] = field(default_factory=dict)

    def key(self, path: str, person_id: str | None) -> str | tuple[str, str]:
        """Which row labels the person ``person_id`` of image ``path``."""
        return path if self.by_image else (path, _id_key(person_id or ""))


def _id_key(text: str) -> str:
    """Person ids as written by pandas or by hand (``12``, ``12.0``) compare equal."""
    text = text.strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def _label_id(text: str, column: str, where: str) -> int:
    try:
        number = float(text.strip())
    except ValueError:
        raise DataError(f"{where}: {column}={text!r} is not an integer — fix or remove that row") from None
    if not number.is_integer():
        raise DataError(f"{where}: {column}={text!r} is not an integer — fix or remove that row")
    return int(number)


def read_gazefollow_labels(path: str | Path) -> GazeFollowLabels:
    """Read a ``gaze-labels-{split}.csv``; a malformed row or a person labelled twice differently is a
    :class:`DataError` naming the file and line."""
    path = require_file(path, "GazeFollow label file (gaze-labels-<split>.csv)")
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        test = all(c in header for c in TEST_COLUMNS)
        if not test and not all(c in header for c in TRAIN_COLUMNS):
            raise DataError(
                f"{path}: not a SemGaze GazeFollow label file — the header needs {', '.join(TRAIN_COLUMNS)} "
                f"(train/val) or {', '.join(TEST_COLUMNS)} (test), found {', '.join(header) or 'none'}"
            )
        labels = GazeFollowLabels(source=str(path), by_image=test)
        try:
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if any(row.get(c) is None for c in (TEST_COLUMNS if test else TRAIN_COLUMNS)):
                    raise DataError(f"{where}: missing values — fix or remove that row")
                if test:
                    _add(labels.table, row["path"].strip(), _test_labels(row, where), where)
                else:
                    key = (row["path"].strip(), _id_key(row["id"]))
                    label = row["gaze_pseudo_label"].strip()
                    if label:  # a shifted or corrupted row shows in its id column
                        _label_id(row["label_id"], "label_id", where)
                    _add(labels.table, key, (label,) if label else (), where)
        except csv.Error as err:
            raise csv_error(path, reader.line_num, err) from None
    return labels


def _test_labels(row: dict[str, str], where: str) -> tuple[str, ...]:
    if _label_id(row["test_label_id"], "test_label_id", where) == -1:
        return ()
    main = row["gaze_gt_label"].strip()
    if not main:
        raise DataError(f"{where}: test_label_id is set but gaze_gt_label is empty — fix that row")
    others = [name.strip() for name in row["gaze_gt_labels"].split("-") if name.strip()]
    return (main, *dict.fromkeys(name for name in others if name != main))


def _add(table: dict, key: object, value: tuple[str, ...], where: str) -> None:
    if table.get(key, value) != value:
        raise DataError(f"{where}: {key} is labelled {table[key]} before and {value} here — keep one row")
    table[key] = value


def attach_gazefollow_labels(frames: Sequence[Frame], labels: GazeFollowLabels) -> Annotations:
    """Frames whose people carry their labels (``label``, ``labels``; people without a row get none).

    The report (the frames' own, when they are :class:`Annotations`) notes how many people were labelled and
    how many label rows matched no one; a file matching no person at all is a :class:`DataError` (almost
    always the label file of another split).
    """
    report = frames.report if isinstance(frames, Annotations) else None
    out, keys = Annotations([], report), set()
    for frame in frames:
        people = []
        for person in frame.people:
            key = labels.key(frame.path, person.person_id)
            names = labels.table.get(key)
            keys.add(key)
            people.append(replace(person, label=names[0] if names else None, labels=names or ()))
        out.append(frame.with_people(people))
    table = set(labels.table)
    if table and not table & keys:
        raise DataError(
            f"{labels.source}: no row matches a person of {out.report.source or 'the annotations'} (by image path"
            f"{'' if labels.by_image else ' and id'}) — is it the label file of the same split?"
        )
    labelled = sum(person.label is not None for frame in out for person in frame.people)
    out.report.note(f"semantic labels from {labels.source}: {labelled} of {out.num_people} people labelled")
    if table - keys:
        out.report.note(f"{len(table - keys)} rows of {labels.source} match no person of the annotations")
    return out
