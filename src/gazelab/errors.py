"""Errors a user can cause. The CLI prints them as one line and exits with code 2 (no traceback)."""

from __future__ import annotations


class GazelabError(Exception):
    """A problem with the user's input (path, file content, option) — the message says what to do."""


class DataError(GazelabError):
    """An annotation or image file that cannot be used as it is."""
