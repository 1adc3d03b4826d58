from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import write_image


def _gazelab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gazelab", *args], capture_output=True, text=True, timeout=120)


def test_data_check_on_the_real_file_prints_its_counts(shared_data: Path) -> None:
    result = _gazelab("data", "check", str(shared_data / "gazefollow_val_annotations_new.txt"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "gazefollow:release-train" in out
    for label, value in (("rows read", 4499), ("rows kept", 4499), ("images (frames)", 4486), ("people", 4499)):
        line = next(line for line in out.splitlines() if label in line)
        assert str(value) in line
    assert "head box clamped to the image: 4 rows" in out
    assert "no images found" in out


def test_data_check_lists_offending_rows_and_exits_1(tmp_path: Path) -> None:
    write_image(tmp_path / "img/a.jpg", (100, 100))
    (tmp_path / "ann.txt").write_text(
        "img/a.jpg,1,0,0,0,0,0.5,0.5,0.2,0.2,10,10,20,20,1,src,meta\n"
        "img/a.jpg,2,0,0,0,0,0.6,0.5,0.2,0.2,30,10,20,20,1,src,meta\n"
    )
    result = _gazelab("data", "check", str(tmp_path / "ann.txt"), "--format", "gazefollow")
    assert result.returncode == 1
    assert "1 rows rejected" in result.stdout
    assert f"{tmp_path / 'ann.txt'}:2: inverted head box" in result.stdout


def test_user_errors_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    result = _gazelab("data", "check", str(tmp_path / "nope.txt"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"gazelab: error: {tmp_path / 'nope.txt'}: no such file or folder"]
    assert "Traceback" not in result.stderr
