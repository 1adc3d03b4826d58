"""Strip every label from frames meant to be unlabelled, so no later step can read hidden ground truth."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from gazelab.types import Frame, Person


def hide_person(person: Person) -> Person:
    """The person as an unlabelled dataset may see it: head (and body/eye/track/id) kept, every target removed.

    ``extra`` goes too: readers keep label-derived values there (pixel gaze points, object boxes).
    """
    return replace(person, gaze=(), inout=None, label=None, labels=(), target_box=None, extra={})


def hide_labels(frames: Iterable[Frame]) -> list[Frame]:
    """Frames whose people carry no gaze point, in/out flag, class label or target box."""
    return [frame.with_people([hide_person(p) for p in frame.people]) for frame in frames]
