"""Shared test helpers: where the real shared data lives, and tiny datasets written on the fly."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GAZELAB_SHARED_DATA", PROJECT_ROOT / ".." / "shared" / "data"))


def write_image(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    """A small random JPEG of ``size`` (w, h) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA} (set GAZELAB_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny-model tests (``pytestmark = pytest.mark.usefixtures(...)``).

    Their ops are too small to split: on a busy 2-core machine a second thread only adds synchronisation
    (measured 5-20x slower), and killed-and-resumed jobs then run the same arithmetic as their reference runs.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def bf16_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the Predictor run bf16 on any CPU. It refuses bf16 where the hardware has no native kernels (slower than
    fp32 there), but torch emulates them with the same numbers, so accuracy checks of the bf16 path hold on every
    CPU; test_predictor_fast.py tests the refusal itself."""
    from gazelab.infer import predictor

    monkeypatch.setattr(predictor, "has_fast_bf16", lambda device: True)
