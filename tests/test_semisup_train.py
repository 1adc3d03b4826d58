"""Two-stream (GCDR student) training through the training engine: recipes, batches, a tiny end-to-end run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_train_recipes import ROOT, parse
from test_train_support import StepLosses, quiet_trainer

from gazelab.data.synthetic import preset, write_dataset
from gazelab.errors import GazelabError
from gazelab.priors.simulate import SimulationParams, write_simulated_priors
from gazelab.semisup.config import SemiSupervision
from gazelab.train.data import GazeDataModule
from gazelab.train.module import GazeModule


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("semisup_train")
    write_dataset(root, preset("small", images=16), preset_name="small")
    write_simulated_priors(root, SimulationParams(p_correct=0.8))
    return root


def _data(root: Path, mode: str, **kwargs) -> GazeDataModule:
    semisup = SemiSupervision(labelled_fraction=0.25, pseudo_labels=[str(root / "priors")], mode=mode,
                              labelled_per_batch=2, unlabelled_per_batch=4, **kwargs)  # fmt: skip
    return GazeDataModule(
        train=str(root / "train_annotations_release.txt"), val=str(root / "test_annotations_release.txt"),
        image_size=64, augment="gazelle", sampling="person", num_workers=0, val_batch_size=8, semisup=semisup,
    )  # fmt: skip


def test_student_recipes_have_the_published_settings():
    for pct, fraction in (("5", "05"), ("10", "10"), ("20", "20")):
        parsed = parse(ROOT / "gcdr" / f"student_{pct}pct.yaml")
        model, semisup = parsed.model, parsed.data.semisup
        assert (model.name, model.lr, model.scheduler, model.milestones, model.gamma) == (
            "vat_spatial", 2.5e-4, "multistep", [15], 0.2)  # fmt: skip
        assert model.losses == {"heatmap_mse": 1.0} and parsed.trainer.max_epochs == 25
        assert (semisup.labelled_per_batch, semisup.unlabelled_per_batch, semisup.mode) == (20, 60, "refined")
        assert parsed.data.train == f"splits/gf{fraction}/labelled.txt"
        assert semisup.unlabelled == f"splits/gf{fraction}/unlabelled.txt"


def test_two_stream_batches_mix_the_streams_and_hide_unlabelled_gaze(synth: Path):
    data = _data(synth, "raw")
    data.setup("fit")
    labelled, unlabelled = data._streams
    loader = data.train_dataloader()
    assert len(loader) == -(-unlabelled // 4)
    batch = next(iter(loader))
    assert batch["labelled"][:2].tolist() == [1.0, 1.0] and torch.all(batch["labelled"][2:] == 0)
    assert torch.all(batch["gaze"][2:] == -1)  # unlabelled people carry no annotated point
    assert batch["heatmaps"].shape[0] == batch["heads"].shape[0] == len(batch["labelled"])


def test_supervised_only_mode_trains_on_the_labelled_part_alone(synth: Path):
    data = _data(synth, "none")
    data.setup("fit")
    assert data._streams is None
    everything = _data(synth, "raw")
    everything.setup("fit")
    assert len(data.train_set) == everything._streams[0]


def test_semisup_needs_prior_stores_and_one_split_source(synth: Path):
    with pytest.raises(GazelabError, match="pseudo_labels"):
        SemiSupervision(labelled_fraction=0.1, mode="refined").validate()
    with pytest.raises(GazelabError, match="exactly one"):
        SemiSupervision(unlabelled="u.txt", labelled_fraction=0.1, mode="none").validate()


def test_a_few_two_stream_steps_lower_the_loss(tmp_path: Path, synth: Path):
    torch.manual_seed(0)
    module = GazeModule(name="gazelle_tiny", train_backbone=True, losses={"heatmap_bce": 1.0}, lr=3e-3)
    recorder = StepLosses()
    trainer = quiet_trainer(tmp_path, max_epochs=3, callbacks=[recorder], enable_checkpointing=False,
                            limit_val_batches=0)  # fmt: skip
    trainer.fit(module, _data(synth, "argmax"))
    first, last = recorder.losses[:3], recorder.losses[-3:]
    assert all(torch.isfinite(torch.tensor(recorder.losses)))
    assert sum(last) / 3 < sum(first) / 3


def test_online_refinement_rewrites_only_unlabelled_in_frame_targets(synth: Path):
    from gazelab.gcdr.model import DiffusionConfig, HeatmapDiffusion
    from gazelab.semisup.online import OnlineRefinement

    data = _data(synth, "raw")
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    torch.manual_seed(0)
    callback = OnlineRefinement(HeatmapDiffusion(DiffusionConfig.tiny()), t_start=250, steps=2)
    before = batch["heatmaps"].clone()
    again = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
    count = callback.refine_batch(batch, step=7)
    changed = (batch["heatmaps"] != before).flatten(1).any(dim=1)
    target = (batch["labelled"] == 0) & (batch["inout"] == 1)
    assert count == int(target.sum()) > 0
    assert not changed[~target].any() and changed[target].all()
    assert 0.0 <= float(batch["heatmaps"].min()) and float(batch["heatmaps"].max()) <= 1.0
    callback.refine_batch(again, step=7)
    assert torch.equal(again["heatmaps"], batch["heatmaps"])  # seeded by (seed, step, row)


def test_pipeline_rows_share_the_labelled_stream(synth: Path, tmp_path: Path):
    """Every row gets the same labelled people per batch; only the pseudo-label rows add unlabelled ones."""
    from gazelab.semisup import pipeline

    config = pipeline.PipelineConfig(fraction=0.25, labelled_per_batch=2, unlabelled_per_batch=3, image_size=64)
    files = pipeline.split_dataset(synth, tmp_path / "split", config)
    stores = {"prior": files.priors, "gcdr": files.priors}
    two_streams = [1, 1, 0, 0, 0]
    for row, expected in (("supervised", [1, 1]), ("full", [1, 1]), ("gcdr", two_streams), ("raw", two_streams)):
        data = pipeline.student_data(files, row, stores, config)
        data.setup("fit")
        batch = next(iter(data.train_dataloader()))
        labelled = batch.get("labelled", torch.ones(len(batch["heads"])))  # one-stream batches are all labelled
        assert labelled.tolist() == expected, row


def test_pipeline_guides_are_cross_fitted_and_feed_a_guided_teacher(synth: Path, tmp_path: Path):
    """``train_guides``: fold ``k``'s student trains on the labelled images outside fold ``k``; a guided teacher
    needs the guides and loads them (the full one becomes its ``guide``)."""
    from gazelab.data.formats import read_annotations
    from gazelab.gcdr.guide import guide_fold
    from gazelab.models.registry import create_model
    from gazelab.semisup import pipeline

    config = pipeline.PipelineConfig(fraction=0.5, labelled_per_batch=2, image_size=64, student_steps=1,
                                     diffusion_epochs=1, diffusion_batch=4)  # fmt: skip
    config.diffusion.update({"encoder_guide": "gazelle_synth", "input_size": 32})
    files = pipeline.split_dataset(synth, tmp_path / "split", config)
    guides = pipeline.train_guides(files, tmp_path / "guides", config)
    labelled = {frame.path for frame in read_annotations(files.labelled)}
    assert len(guides.folds) == 2
    for fold in range(2):
        trained_on = {frame.path for frame in read_annotations(tmp_path / "guides" / f"fold{fold}.txt")}
        assert trained_on == {path for path in labelled if guide_fold(path, 2) != fold}
    with pytest.raises(ValueError, match="needs its guides"):
        pipeline.train_diffusion(files, tmp_path / "unguided", config)
    teacher = pipeline.train_diffusion(files, tmp_path / "teacher", config, guides)
    full = create_model("gazelle_synth", pretrained=str(guides.full))
    for name, value in full.state_dict().items():
        assert torch.equal(teacher.guide.state_dict()[name], value), name


def test_pipeline_guides_refuse_a_fold_without_training_images(synth: Path, tmp_path: Path):
    from gazelab.semisup import pipeline

    config = pipeline.PipelineConfig(fraction=1 / 16, labelled_per_batch=2, image_size=64, student_steps=1)
    files = pipeline.split_dataset(synth, tmp_path / "split", config)  # one labelled image: one fold is empty
    with pytest.raises(GazelabError, match="guide fold .* nothing to train on"):
        pipeline.train_guides(files, tmp_path / "guides", config)
