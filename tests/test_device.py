"""One reading of ``--device`` (gazelab.device) and its use by the semi-supervised pipeline, demo and benchmark."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import pytest
import torch

from gazelab.cli import main
from gazelab.device import lightning_devices, resolve_device
from gazelab.errors import GazelabError
from gazelab.semisup import pipeline

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "semisup_synthetic.py"
UNUSABLE = "cuda:99"
"""A device no machine has: CUDA absent (CI) or no 100th GPU."""


@pytest.mark.parametrize("cuda", [True, False])
def test_auto_takes_the_gpu_only_when_there_is_one(monkeypatch, cuda: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert resolve_device("auto") == torch.device("cuda" if cuda else "cpu")


def test_named_devices_are_checked_with_the_option_in_the_error() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    for name in (UNUSABLE, "gpu0"):
        with pytest.raises(GazelabError, match=f"^--device {name}: not usable here \\(.+\\) — use cpu, or auto$"):
            resolve_device(name)
    with pytest.raises(GazelabError, match="^--accelerator gpu0: "):
        resolve_device("gpu0", option="--accelerator")


def test_lightning_trains_on_the_named_device_alone() -> None:
    assert lightning_devices(torch.device("cuda", 1)) == {"accelerator": "gpu", "devices": [1]}
    assert lightning_devices(torch.device("cuda")) == {"accelerator": "gpu", "devices": [0]}
    assert lightning_devices(torch.device("cpu")) == {"accelerator": "cpu", "devices": 1}


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_pipeline_trainer_follows_the_config_and_keeps_lightnings_info_lines(tmp_path: Path) -> None:
    import lightning.pytorch as L

    lightning_log, records = logging.getLogger("lightning.pytorch"), Records()
    lightning_log.addHandler(records)
    try:
        L.Trainer(accelerator="cpu", devices=1, logger=False, default_root_dir=tmp_path)
        plain = [r.getMessage() for r in records.records]
        records.records.clear()
        trainer = pipeline._trainer(tmp_path, pipeline.PipelineConfig(device="cpu"), max_steps=1)
    finally:
        lightning_log.removeHandler(records)
    assert any("GPU available" in message for message in plain)  # what a plain Trainer logs (INFO)
    assert records.records == [] and lightning_log.level == logging.INFO  # held back, then the level restored
    assert trainer.strategy.root_device == torch.device("cpu")
    with pytest.raises(GazelabError, match=f"--device {UNUSABLE}"):
        pipeline._trainer(tmp_path, pipeline.PipelineConfig(device=UNUSABLE), max_steps=1)


def test_demo_refuses_an_unusable_device_before_writing_anything(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    with pytest.raises(SystemExit) as done:
        main(["demo", "--out", str(out), "--device", UNUSABLE])
    err = capsys.readouterr().err.strip()
    assert done.value.code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"gazelab: error: --device {UNUSABLE}: not usable here") and "Traceback" not in err
    assert not out.exists()


def test_benchmark_refuses_an_unusable_device_before_writing_anything(tmp_path: Path, monkeypatch) -> None:
    data, out = tmp_path / "data", tmp_path / "runs"
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), "--data", str(data), "--out", str(out), "--device", UNUSABLE])
    spec = importlib.util.spec_from_file_location("semisup_synthetic", SCRIPT)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    with pytest.raises(SystemExit, match=f"^--device {UNUSABLE}: not usable here"):
        benchmark.main()
    assert not data.exists() and not out.exists()
