"""The prior store: records round-trip, appends are atomic and resumable, damage is found, stores merge."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gazelab.cli import main
from gazelab.errors import GazelabError
from gazelab.priors.jobs import in_shard, parse_shard
from gazelab.priors.store import INDEX, PriorRecord, PriorStore, merge_stores, person_key
from gazelab.types import Box, Frame, Person


def _record(image: str, person: int, seed: int, answer: str = "", valid: bool = True) -> PriorRecord:
    return PriorRecord(image, person, np.random.default_rng(seed).random((64, 64)), answer, valid)


def _contents(store: PriorStore) -> dict:
    return {r.key: (r.heatmap.tobytes(), r.answer, r.valid) for r in store}


def test_records_round_trip_as_float16_and_last_write_wins(tmp_path: Path) -> None:
    store = PriorStore(tmp_path / "s", create=True, meta={"kind": "simulated", "params": {"p": (1, 2)}})
    first = _record("a.jpg", 0, 0, "a cup")
    store.write([first, _record("a.jpg", 1, 1, valid=False)])
    store.write([_record("b.jpg", 3, 2)])
    store.write([_record("a.jpg", 0, 3, "a phone")])  # supersedes the first record
    again = PriorStore(tmp_path / "s")
    assert len(again) == 3 and again.keys() == {("a.jpg", 0), ("a.jpg", 1), ("b.jpg", 3)}
    assert ("b.jpg", 3) in again and ("b.jpg", 0) not in again and again.get("c.jpg", 0) is None
    got = again.get("a.jpg", 0)
    assert got is not None and got.answer == "a phone" and got.heatmap.dtype == np.float16
    np.testing.assert_array_equal(got.heatmap, _record("a.jpg", 0, 3).heatmap.astype(np.float16))
    assert again.get("a.jpg", 1).valid is False  # type: ignore[union-attr]
    assert sorted(r.key for r in again) == sorted(again.keys())
    assert again.meta == {"kind": "simulated", "params": {"p": [1, 2]}}
    # Resuming with the same parameters works (tuples == lists); other parameters are refused.
    PriorStore(tmp_path / "s", create=True, meta={"kind": "simulated", "params": {"p": (1, 2)}})
    with pytest.raises(GazelabError, match="other parameters"):
        PriorStore(tmp_path / "s", create=True, meta={"kind": "refined"})
    assert _contents(pickle.loads(pickle.dumps(again))) == _contents(again)  # DataLoader workers


def test_two_writers_on_one_store_keep_every_shard(tmp_path: Path) -> None:
    first = PriorStore(tmp_path / "s", create=True)
    second = PriorStore(tmp_path / "s")
    first.write([_record("a.jpg", 0, 0)])
    second.write([_record("b.jpg", 0, 1)])  # sees first's shard under the lock and appends after it
    first.write([_record("c.jpg", 0, 2)])
    merged = PriorStore(tmp_path / "s")
    assert merged.keys() == {("a.jpg", 0), ("b.jpg", 0), ("c.jpg", 0)} and merged.check().ok


def test_bad_records_and_paths_are_refused(tmp_path: Path) -> None:
    store = PriorStore(tmp_path / "s", create=True)
    with pytest.raises(ValueError, match="64x64"):
        store.write([PriorRecord("a.jpg", 0, np.zeros((32, 32)))])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        store.write([PriorRecord("a.jpg", 0, np.full((64, 64), 2.0))])
    with pytest.raises(ValueError, match="twice"):
        store.write([_record("a.jpg", 0, 0), _record("a.jpg", 0, 1)])
    assert len(store) == 0
    with pytest.raises(GazelabError, match="not a prior store"):
        PriorStore(tmp_path / "missing")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    with pytest.raises(GazelabError, match="not empty"):
        PriorStore(tmp_path / "busy", create=True)


def test_check_finds_damage_and_ignores_interrupted_writes(tmp_path: Path) -> None:
    store = PriorStore(tmp_path / "s", create=True)
    store.write([_record("a.jpg", 0, 0)])
    store.write([_record("b.jpg", 0, 1)])
    assert store.check().ok
    (tmp_path / "s" / "shards" / "shard-000009.safetensors").write_bytes(b"half a shard")
    report = store.check()
    assert report.ok and len(report.warnings) == 1 and "not in index.json" in report.warnings[0]
    shard = tmp_path / "s" / "shards" / "shard-000001.safetensors"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    report = PriorStore(tmp_path / "s").check()
    assert not report.ok and "checksum" in report.problems[0]
    assert main_exit(["prior", "check", str(tmp_path / "s")]) == 1
    shard.unlink()
    with pytest.raises(GazelabError, match="missing"):
        PriorStore(tmp_path / "s")


def main_exit(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return int(exit_info.value.code or 0)


def test_merge_joins_parts_and_refuses_conflicts(tmp_path: Path) -> None:
    a = PriorStore(tmp_path / "a", create=True, meta={"kind": "simulated"})
    b = PriorStore(tmp_path / "b", create=True, meta={"kind": "simulated"})
    a.write([_record("a.jpg", 0, 0, "cup"), _record("shared.jpg", 0, 5)])
    b.write([_record("b.jpg", 0, 1), _record("shared.jpg", 0, 5)])
    merged = merge_stores([a, b], tmp_path / "m", chunk=2)
    assert _contents(merged) == {**_contents(a), **_contents(b)} and merged.meta == {"kind": "simulated"}
    b.write([_record("a.jpg", 0, 9)])
    with pytest.raises(GazelabError, match="differs"):
        merge_stores([a, b], tmp_path / "m2")
    other = PriorStore(tmp_path / "c", create=True, meta={"kind": "gradcam"})
    with pytest.raises(GazelabError, match="other parameters"):
        merge_stores([a, other], tmp_path / "m3")


def test_person_key_uses_integer_ids_else_the_index() -> None:
    frame = Frame("x/1.jpg", people=[Person(Box(0, 0, 0.1, 0.1), person_id="17"), Person(None, person_id="p2")])
    assert person_key(frame, 0) == ("x/1.jpg", 17) and person_key(frame, 1) == ("x/1.jpg", 1)


def test_shards_partition_the_images() -> None:
    images = [f"train/{i:08d}.jpg" for i in range(200)]
    parts = [{m for m in images if in_shard(m, (i, 3))} for i in range(3)]
    assert set().union(*parts) == set(images) and sum(map(len, parts)) == len(images) and all(parts)
    assert parse_shard("1/3") == (1, 3) and parse_shard(None) == (0, 1)
    for bad in ("3/3", "x", "1-3"):
        with pytest.raises(GazelabError):
            parse_shard(bad)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    assert main_exit(["synth", "--out", str(out), "--images", "30", "--seed", "3"]) == 0
    return out


def _simulate(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gazelab", "prior", "simulate", str(data), "--out", str(out), *extra]


def test_killed_run_resumes_to_the_same_contents(synth_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    subprocess.run(_simulate(synth_dir, full), check=True, env=env, capture_output=True)
    total = len(PriorStore(full))
    # One record per shard, so the kill lands mid-run: SIGKILL as soon as the first shard is published.
    killed = subprocess.Popen(_simulate(synth_dir, resumed, "--batch-size", "1", "--flush-every", "1"), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while not (resumed / INDEX).is_file() and time.monotonic() < deadline and killed.poll() is None:
        time.sleep(0.002)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    partial = len(PriorStore(resumed))
    assert 0 < partial < total
    done = subprocess.run(_simulate(synth_dir, resumed), check=True, env=env, capture_output=True, text=True)
    assert f"{total - partial} new, {partial} already" in done.stderr.replace("\n", " ")
    assert _contents(PriorStore(resumed)) == _contents(PriorStore(full))
    assert PriorStore(resumed).check().ok


def test_sharded_runs_merge_to_the_full_run(synth_dir: Path, tmp_path: Path) -> None:
    for i in range(2):
        part = str(tmp_path / f"p{i}")
        assert main_exit(["prior", "simulate", str(synth_dir), "--out", part, "--shard", f"{i}/2"]) == 0
    assert main_exit(["prior", "merge", str(tmp_path / "p0"), str(tmp_path / "p1"), "--out", str(tmp_path / "m")]) == 0
    assert main_exit(["prior", "simulate", str(synth_dir), "--out", str(tmp_path / "full")]) == 0
    parts = [PriorStore(tmp_path / f"p{i}") for i in range(2)]
    assert all(len(p) for p in parts) and not parts[0].keys() & parts[1].keys()
    assert _contents(PriorStore(tmp_path / "m")) == _contents(PriorStore(tmp_path / "full"))
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["kind"] == "simulated" and meta["params"]["p_correct"] == 0.6
