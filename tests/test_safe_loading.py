"""Loading never runs code from a file: a source audit against regressions, and booby-trapped files refused.

A trapped file carries a pickled ``os.system`` call that would create a marker file; every test checks that
the marker is still absent after gazelab refused the file, i.e. that the refusal happened before unpickling.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import tokenize
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PROJECT_ROOT, write_image

from gazelab.cli import main
from gazelab.errors import GazelabError
from gazelab.models.checkpoints import CheckpointError, load_state_dict_file

SOURCE = PROJECT_ROOT / "src" / "gazelab"
PICKLE_IMPORT = SOURCE / "priors" / "pickle_import.py"
"""The one module allowed to unpickle: the reference GCDR file, only behind ``--trust-pickle``."""

UNSAFE = {
    "torch.load without weights_only=True": re.compile(r"torch\.load\((?![^)]*weights_only=True)"),
    "eval/exec builtin": re.compile(r"(?<![\w.])(eval|exec)\("),
    "yaml.load without SafeLoader": re.compile(r"yaml\.(unsafe_)?load\((?![^)]*SafeLoader)"),
    "numpy allow_pickle=True": re.compile(r"allow_pickle\s*=\s*True"),
    "np.load without allow_pickle=False": re.compile(r"np\.load\((?![^)]*allow_pickle=False)"),
    "transformers trust_remote_code": re.compile(r"trust_remote_code\s*=\s*True"),
    "shell command": re.compile(r"os\.system\(|shell\s*=\s*True"),
    "Lightning checkpoint without weights_only=True": re.compile(r"ckpt_path=(?![^)]*weights_only=True)"),
}
PICKLE_CALL = re.compile(r"pickle\.loads?\(|torch\.load\([^)]*weights_only=False")


def _code(text: str) -> str:
    """``text`` with its comments and string literals blanked out: docs may mention what code must not do."""
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    chars = list(text)
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type in (tokenize.STRING, tokenize.COMMENT):
            begin = starts[token.start[0] - 1] + token.start[1]
            end = starts[token.end[0] - 1] + token.end[1]
            chars[begin:end] = [c if c == "\n" else " " for c in chars[begin:end]]
    return "".join(chars)


def _source_files() -> list[Path]:
    files = sorted(SOURCE.rglob("*.py"))
    assert len(files) > 50, "the audit must see the whole package"
    return files


def test_source_tree_has_no_unsafe_loading_call() -> None:
    found = []
    for file in _source_files():
        text = _code(file.read_text(encoding="utf-8"))
        found += [f"{file.relative_to(SOURCE)}: {what}" for what, pattern in UNSAFE.items() if pattern.search(text)]
        if file != PICKLE_IMPORT and PICKLE_CALL.search(text):
            found.append(f"{file.relative_to(SOURCE)}: unpickling outside priors/pickle_import.py")
    assert found == []


def test_the_audit_patterns_catch_what_they_are_meant_to() -> None:
    bad = {
        "torch.load without weights_only=True": "torch.load(path, map_location='cpu')",
        "eval/exec builtin": "value = eval(text)",
        "yaml.load without SafeLoader": "yaml.load(handle)",
        "np.load without allow_pickle=False": "np.load(path)",
        "Lightning checkpoint without weights_only=True": "trainer.fit(model, ckpt_path=path)",
    }
    for what, line in bad.items():
        assert UNSAFE[what].search(line), what
    good = "torch.load(path, map_location='cpu', weights_only=True); model.eval(); ast.literal_eval(text)"
    assert not any(pattern.search(good) for pattern in UNSAFE.values())
    documented = '"""The reference reads ``torch.load(f)``."""  # never eval(text)\nx = 1\n'
    assert _code(documented).strip() == "x = 1"


class _Trap:
    """Pickles as a call to ``os.system`` that would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "code-ran"


def _trapped_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {"weight": torch.ones(2)}, "hook": _Trap(marker)}, path)
    return path


def test_weight_file_with_a_code_object_is_refused_in_one_line(tmp_path: Path, marker: Path) -> None:
    evil = _trapped_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises(CheckpointError) as refused:
        load_state_dict_file(evil)
    message = str(refused.value)
    assert "\n" not in message and str(evil) in message and "weights-only" in message
    assert not marker.exists()


def test_cli_refuses_a_trapped_checkpoint_with_exit_code_2(tmp_path: Path, marker: Path, capsys) -> None:
    evil = _trapped_checkpoint(tmp_path / "evil.pt", marker)
    image = write_image(tmp_path / "a.jpg", (64, 48))
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(image), "--model", "gazelle_tiny", "--weights", str(evil), "--heads", "0.1,0.1,0.3,0.3",
              "--out", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert err.strip().splitlines() == [err.strip().splitlines()[-1]] and str(evil) in err
    assert err.startswith("gazelab: error: ") and "Traceback" not in err
    assert not marker.exists()


def test_heatmap_npz_with_pickled_objects_is_refused(tmp_path: Path, marker: Path) -> None:
    from gazelab.eval.predictions import read_predictions
    from gazelab.types import Box, Frame, Person

    frames = [Frame(path="a.jpg", width=10, height=10, people=[Person(head=Box(0.1, 0.1, 0.3, 0.3))])]
    evil = tmp_path / "evil.npz"
    np.savez(evil, heatmaps=np.zeros((1, 64, 64)), path=np.array([_Trap(marker)], dtype=object), person=np.zeros(1))
    with pytest.raises(GazelabError, match="without pickled objects"):
        read_predictions([evil], frames)
    assert not marker.exists()


def test_corrupt_safetensors_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match="broken.safetensors"):
        load_state_dict_file(broken)


def test_pickle_zip_inside_a_pt_is_not_loaded_as_weights(tmp_path: Path, marker: Path) -> None:
    """A .pt that is a zip with a hand-made ``data.pkl`` (no torch.save involved) is refused too."""
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(1)}, buffer)
    buffer.seek(0)
    evil = tmp_path / "handmade.pt"
    with zipfile.ZipFile(buffer) as good, zipfile.ZipFile(evil, "w") as out:
        for item in good.infolist():
            data = good.read(item)
            if item.filename.endswith("data.pkl"):
                data = pickle.dumps(_Trap(marker), protocol=2)
            out.writestr(item, data)
    with pytest.raises(CheckpointError):
        load_state_dict_file(evil)
    assert not marker.exists()
