"""Multi-process training as documented: `torchrun ... -m gazelab train` with Lightning's DDP over gloo (CPU).

Two processes share one global data order and one feature cache (each computes half of the missing
features), gradients are averaged, validation persons gathered from both, and rank 0 alone writes the
checkpoints, logs and exported weights.
"""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys

import torch
import yaml
from test_train_support import make_synthetic

from gazelab.data.dataset import PersonDataset
from gazelab.data.formats import read_annotations

BATCH = 2
EPOCHS = 2


def test_two_process_ddp_training_with_torchrun(tmp_path):
    train, test = make_synthetic(tmp_path / "synth", images=8)
    root = tmp_path / "run"
    recipe = {
        "trainer": {"max_epochs": EPOCHS, "accelerator": "cpu", "devices": 2, "strategy": "ddp",
                    "default_root_dir": str(root), "enable_progress_bar": False, "enable_model_summary": False},
        "model": {"name": "gazelle_tiny"},
        "data": {"train": str(train), "val": str(test), "batch_size": BATCH, "num_workers": 0,
                 "feature_cache": str(tmp_path / "cache")},
    }  # fmt: skip
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "gazelab", "train", "--config", str(config)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    samples = len(PersonDataset(read_annotations(train, check_images=True)))
    steps_per_epoch = math.ceil(math.ceil(samples / 2) / BATCH)  # each process gets half of the samples
    last = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == EPOCHS * steps_per_epoch
    with (root / "version_0" / "metrics.csv").open(encoding="utf-8") as handle:
        scored = [float(row["val_persons"]) for row in csv.DictReader(handle) if row["val_persons"]]
    people = read_annotations(test, check_images=True).num_people
    assert scored == [people] * EPOCHS  # both processes' validation persons were gathered
    cache_shards = list((tmp_path / "cache").glob("*/shards/*.npy"))
    assert len({path.name.split("-")[0] for path in cache_shards}) == 2  # one writer per process
    assert (root / "weights" / "gazelle_tiny.pt").is_file()
    assert not list(tmp_path.glob("version_*"))  # nothing written outside the run folder
