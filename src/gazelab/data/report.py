"""What a reader kept and what it skipped, and why.

Readers never drop a row silently: each rejected row is counted under a reason and the first few are kept
with their file and line so ``gazelab data check`` can point at them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from gazelab.types import Frame

MAX_EXAMPLES = 20


@dataclass
class SkippedRow:
    file: str
    line: int
    reason: str
    detail: str = ""

    def __str__(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.file}:{self.line}: {self.reason}{detail}"


@dataclass
class LoadReport:
    """Counts of rows read/kept/skipped per reason, plus the first offending rows."""

    format: str
    source: str
    rows_read: int = 0
    rows_kept: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: list[SkippedRow] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)
    """Repairs that kept a row (e.g. ``head box clamped``), counted like skips but not errors."""

    def skip(self, file: str | Path, line: int, reason: str, detail: str = "") -> None:
        self.skipped[reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(SkippedRow(str(file), line, reason, detail))

    def note(self, what: str) -> None:
        self.notes[what] += 1

    @property
    def rows_skipped(self) -> int:
        return sum(self.skipped.values())

    def merge(self, other: LoadReport) -> None:
        self.rows_read += other.rows_read
        self.rows_kept += other.rows_kept
        self.skipped.update(other.skipped)
        self.notes.update(other.notes)
        room = MAX_EXAMPLES - len(self.examples)
        self.examples.extend(other.examples[: max(room, 0)])

    def summary(self) -> str:
        parts = [f"{self.rows_read} rows read, {self.rows_kept} kept, {self.rows_skipped} skipped"]
        if self.skipped:
            parts.append(", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items())))
        return "; ".join(parts)


class Annotations(list[Frame]):
    """A ``list[Frame]`` that also carries the :class:`LoadReport` of the reader that made it."""

    def __init__(self, frames: list[Frame] | None = None, report: LoadReport | None = None) -> None:
        super().__init__(frames or [])
        self.report = report if report is not None else LoadReport(format="", source="")

    @property
    def num_people(self) -> int:
        return sum(len(f.people) for f in self)
