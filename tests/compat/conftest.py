"""Where the golden fixtures live, for every test in ``tests/compat``.

The root is ``$GAZELAB_FIXTURES`` (default: ``../shared/fixtures`` next to the project), so the same tests run
unchanged on another fixture set with the same layout. A missing folder fails the test: a skipped
compatibility check would look like a passed one.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

FIXTURES_ENV = "GAZELAB_FIXTURES"
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"


def fixtures_root() -> Path:
    return Path(os.environ.get(FIXTURES_ENV, DEFAULT_ROOT))


def find_fixture(name: str) -> Path:
    """The folder of fixture ``name``; fails the calling test when it is not there."""
    folder = fixtures_root() / name
    if not folder.is_dir():
        pytest.fail(f"fixture folder {folder} not found — set {FIXTURES_ENV} to the fixture root")
    return folder


@pytest.fixture
def fixture_dir() -> Callable[[str], Path]:
    """``fixture_dir(name)`` -> the fixture folder ``name`` (see :func:`find_fixture`)."""
    return find_fixture


def load_fill() -> ModuleType:
    """The fixture set's ``fill.py``, which regenerates the reference weights from their state-dict names."""
    root = fixtures_root()
    spec = importlib.util.spec_from_file_location("gazelab_fixture_fill", root / "fill.py")
    assert spec is not None and spec.loader is not None, f"no fill.py in {root}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
