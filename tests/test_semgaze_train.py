"""SemGaze training pieces: GazeFollow's semantic label files, the semantic validation scores, the per-step warm-up
and SWA — the last three in one tiny ``gazelab train`` run on synthetic GazeFollow files."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
import yaml

from gazelab.data.formats import attach_gazefollow_labels, read_gazefollow, read_gazefollow_labels
from gazelab.data.synthetic import preset, write_dataset
from gazelab.errors import DataError, GazelabError
from gazelab.eval.semantic import LabelTargets, SemanticMetric, semantic_summary
from gazelab.train.cli import build_cli
from gazelab.train.module import warmup_schedule
from gazelab.types import Box, Person

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRAIN_HEADER = "path,id,split,gaze_pseudo_label,label_id\n"
TEST_HEADER = "path,gaze_gt_label,gaze_gt_labels,test_label_id\n"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    write_dataset(out, preset("small", images=6, seed=3))
    return out


def vocabulary(folder: Path) -> list[str]:
    return sorted(yaml.safe_load((folder / "vocab2id.json").read_text()))


def write_labels(folder: Path) -> tuple[Path, Path]:
    """Label files for the synthetic GazeFollow files: every train person but the last labelled (id written as
    pandas writes floats), every test image with two acceptable labels."""
    names = vocabulary(folder)
    train = [(f.path, p.person_id) for f in read_gazefollow(folder / "train_annotations_release.txt") for p in f.people]
    rows = [f"{path},{pid}.0,train,{names[i % 3]},{i % 3}\n" for i, (path, pid) in enumerate(train[:-1])]
    (folder / "gaze-labels-train.csv").write_text(TRAIN_HEADER + "".join(rows))
    test = [f.path for f in read_gazefollow(folder / "test_annotations_release.txt")]
    rows = [f"{path},{names[4]},{names[4]}-{names[5]},4\n" for path in test]
    (folder / "gaze-labels-test.csv").write_text(TEST_HEADER + "".join(rows))
    return folder / "gaze-labels-train.csv", folder / "gaze-labels-test.csv"


def test_gazefollow_labels_are_merged_by_path_and_id_or_by_path(synthetic: Path, tmp_path: Path) -> None:
    train_labels, test_labels = write_labels(synthetic)
    names = vocabulary(synthetic)
    frames = attach_gazefollow_labels(
        read_gazefollow(synthetic / "train_annotations_release.txt"), read_gazefollow_labels(train_labels)
    )
    people = [p for f in frames for p in f.people]
    assert [p.label for p in people] == [names[i % 3] for i in range(len(people) - 1)] + [None]
    assert all(p.labels == ((p.label,) if p.label else ()) for p in people)
    assert f"{len(people) - 1} of {len(people)} people labelled" in " ".join(frames.report.notes)

    rows = test_labels.read_text().splitlines()
    first_path = rows[1].split(",")[0]
    test_labels.write_text("\n".join([rows[0], f"{first_path},tv,tv,-1", *rows[2:]]) + "\n")  # -1: no label
    frames = attach_gazefollow_labels(
        read_gazefollow(synthetic / "test_annotations_release.txt"), read_gazefollow_labels(test_labels)
    )
    for frame in frames:
        want = () if frame.path == first_path else (names[4], names[5])
        assert all(p.labels == want and p.label == (want[0] if want else None) for p in frame.people)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (TRAIN_HEADER + "train/a.jpg,0,train,ball,0\ntrain/a.jpg,1,train,cup,x\n", ":3: label_id='x'"),
        (TRAIN_HEADER + "train/a.jpg,0,train,ball,0\ntrain/a.jpg,0.0,train,cup,1\n", ":3: ('train/a.jpg', '0')"),
        ("path,label\ntrain/a.jpg,ball\n", "not a SemGaze GazeFollow label file"),
        (TEST_HEADER + "test/a.jpg,,,2\n", ":2: test_label_id is set but gaze_gt_label is empty"),
    ],
)
def test_bad_label_files_name_the_file_and_row(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "gaze-labels-train.csv"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        read_gazefollow_labels(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_a_label_file_of_another_split_is_refused(synthetic: Path) -> None:
    train_labels, _ = write_labels(synthetic)
    with pytest.raises(DataError, match="no row matches a person"):
        attach_gazefollow_labels(
            read_gazefollow(synthetic / "test_annotations_release.txt"), read_gazefollow_labels(train_labels)
        )


def test_semantic_scores_by_hand() -> None:
    """Vocabulary = the 4 unit axes; each embedding's ranking is known, so each score can be counted."""
    vocab = torch.eye(4)
    ids = {"a": 0, "b": 1, "c": 2, "d": 3}
    embeddings = torch.tensor([[1.0, 0.5, 0, 0], [0, 0.2, 1.0, 0.5], [0, 0, 0.3, 1.0], [0.9, 1.0, 0, 0]])
    people = [
        Person(head=None, label="a", labels=("a",), target_box=Box(0.0, 0.0, 0.5, 0.5)),  # top-1 hit
        Person(head=None, label="b", labels=("b",)),  # top-1 c, top-3 c,d,b: acc3 only
        Person(head=None, label="c", labels=("c", "d"), target_box=Box(0.5, 0.5, 1.0, 1.0)),  # top-1 d: multi
        Person(head=None),  # no label: ignored
    ]
    targets = LabelTargets.from_people(people, ids)
    points = torch.tensor([[0.25, 0.25], [0.1, 0.1], [0.2, 0.9], [0.5, 0.5]], dtype=torch.float64)
    scores = semantic_summary(embeddings, points, targets, vocab)
    assert scores == pytest.approx({"acc1": 1 / 3, "acc3": 1.0, "multi_acc1": 2 / 3, "gaze_acc": 0.5})
    plain = LabelTargets.from_people([people[1], people[3]], ids)  # no one with several labels or a box
    assert semantic_summary(embeddings[[1, 3]], points[[1, 3]], plain, vocab) == {"acc1": 0.0, "acc3": 1.0}

    # Through the accumulating metric: rows repeated by a distributed sampler count once.
    heatmaps = torch.zeros(4, 64, 64)
    for i, (x, y) in enumerate(points.tolist()):
        heatmaps[i, min(int(y * 64), 63), min(int(x * 64), 63)] = 1.0
    metric = SemanticMetric(targets, vocab)
    metric.update(torch.tensor([0, 1]), embeddings[:2], heatmaps[:2])
    metric.update(torch.tensor([2, 3, 0]), embeddings[[2, 3, 0]], heatmaps[[2, 3, 0]])
    assert {k: float(v) for k, v in metric.compute().items()} == pytest.approx(scores)

    with pytest.raises(GazelabError, match="not in the vocabulary"):
        LabelTargets.from_people([Person(head=None, label="zebra")], ids)


def test_warmup_then_cosine_factors_per_group() -> None:
    weights = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.SGD([{"params": weights[:1], "lr": 1.0}, {"params": weights[1:], "lr": 0.1}])
    schedule = warmup_schedule(optimizer, warmup=4, total=10, min_lr=0.01, cosine=True)
    seen = []
    for _ in range(11):
        seen.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        schedule.step()
    assert [lr for lr, _ in seen[:5]] == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert [lr for _, lr in seen[:5]] == pytest.approx([0, 0.025, 0.05, 0.075, 0.1])
    middle = 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 3 / 6))
    assert seen[7][0] == pytest.approx(middle) and seen[10] == pytest.approx([0.01, 0.01])
    constant = warmup_schedule(optimizer, warmup=2, total=10, min_lr=0.0, cosine=False)
    factors = [constant.lr_lambdas[0](step) for step in (0, 1, 2, 9, 20)]
    assert factors == [0.0, 0.5, 1.0, 1.0, 1.0]


@pytest.fixture(scope="module")
def swa_run(synthetic: Path, tmp_path_factory: pytest.TempPathFactory):
    """2 epochs of 3 steps: warm-up over the first epoch, SWA (from YAML) over the second, checkpoints on Acc@1."""
    train_labels, test_labels = write_labels(synthetic)
    root = tmp_path_factory.mktemp("swa_run")
    recipe = {
        "trainer": {
            "max_epochs": 2, "accelerator": "cpu", "devices": 1, "default_root_dir": str(root),
            "limit_train_batches": 3, "enable_progress_bar": False, "enable_model_summary": False,
            "log_every_n_steps": 1, "num_sanity_val_steps": 0,
            "callbacks": [
                {"class_path": "lightning.pytorch.callbacks.StochasticWeightAveraging",
                 "init_args": {"swa_lrs": 1e-4, "swa_epoch_start": 2, "annealing_epochs": 1}},
                {"class_path": "lightning.pytorch.callbacks.LearningRateMonitor",
                 "init_args": {"logging_interval": "step"}},
            ],
        },
        "model": {"name": "semgaze_tiny", "train_backbone": True, "optimizer": "adamw", "lr": 1e-3,
                  "losses": {"heatmap_mse_semgaze": 1000.0, "angular": 3.0, "info_nce": 1.0},
                  "scheduler": "cosine", "warmup_epochs": 1, "vocabulary": str(synthetic / "vocab2id.json"),
                  "text_model": "random"},
        "data": {"train": str(synthetic / "train_annotations_release.txt"), "train_labels": str(train_labels),
                 "val": str(synthetic / "test_annotations_release.txt"), "val_labels": str(test_labels),
                 "format": "gazefollow", "image_size": None, "augment": None, "batch_size": 2, "num_workers": 0},
        "checkpoint": {"monitor": "val_acc1", "mode": "max"},
    }  # fmt: skip
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    cli = build_cli(["--config", str(root / "recipe.yaml")])
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    with (root / "version_0" / "metrics.csv").open() as handle:
        return cli, list(csv.DictReader(handle))


def test_validation_logs_the_semantic_scores_and_checkpoints_can_use_them(swa_run) -> None:
    cli, rows = swa_run
    epochs = [row for row in rows if row.get("val_acc1")]
    assert len(epochs) >= 2
    for row in epochs:
        assert row["val_auc"] and all(0 <= float(row[k]) <= 1 for k in ("val_acc1", "val_acc3", "val_multi_acc1"))
        assert float(row["val_acc3"]) >= float(row["val_acc1"])
    # The training labels reached the contrastive loss (unlabelled people would leave it at zero).
    assert any(float(row["train_info_nce"]) > 0 for row in rows if row.get("train_info_nce"))
    (best,) = [c for c in cli.trainer.checkpoint_callbacks if getattr(c, "monitor", None) == "val_acc1"]
    assert float(best.best_model_score) == pytest.approx(max(float(row["val_acc1"]) for row in epochs))


def test_learning_rate_warms_up_linearly_per_step(swa_run) -> None:
    """After k of the N = 3 warm-up steps (1 epoch of 3 batches) the optimiser's rate is k/N of the peak."""
    _, rows = swa_run
    (column,) = [name for name in rows[0] if name.startswith("lr-")]  # LearningRateMonitor's, one param group
    lrs = [float(row[column]) for row in rows if row.get(column)]
    assert lrs[:3] == pytest.approx([0.0, 1e-3 / 3, 2e-3 / 3])


def test_swa_averages_and_the_run_finishes(swa_run) -> None:
    cli, _ = swa_run
    (swa,) = [c for c in cli.trainer.callbacks if type(c).__name__ == "StochasticWeightAveraging"]
    assert int(swa.n_averaged) == 1 and cli.trainer.state.finished
    averaged = dict(swa._average_model.named_parameters())
    for name, param in cli.model.named_parameters():  # the averaged weights were handed to the module
        assert torch.equal(param.detach().cpu(), averaged[name].detach().cpu()), name


@pytest.mark.parametrize("recipe", ["gazefollow", "gazehoi"])
def test_recipes_have_the_published_schedule(recipe: str) -> None:
    """4 warm-up epochs before the cosine; SWA from epoch 17 annealed to 1e-5 over 3 epochs; GazeFollow's labels."""
    from gazelab.train.cli import GazeCLI

    class ParseOnly(GazeCLI):
        def instantiate_classes(self) -> None:
            pass

    config = Path(__file__).resolve().parents[1] / "configs" / "semgaze" / f"{recipe}.yaml"
    parsed = build_cli(["--config", str(config)], cli_class=ParseOnly).config
    assert (parsed.model.scheduler, parsed.model.warmup_epochs, parsed.model.min_lr) == ("cosine", 4, 0)
    (swa,) = parsed.trainer.callbacks
    assert (swa.init_args.swa_epoch_start, swa.init_args.swa_lrs, swa.init_args.annealing_epochs) == (17, 1e-5, 3)
    if recipe == "gazefollow":
        assert parsed.data.train_labels.endswith("gaze-labels-train.csv")
        assert parsed.data.val_labels.endswith("gaze-labels-val.csv")
