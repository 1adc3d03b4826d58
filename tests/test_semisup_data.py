"""Semi-supervised data: label hiding, pseudo-label sources, maps moved with the augmentation, two-stream
batches, and the no-leakage guarantee (scrambling hidden labels changes nothing the trainer sees)."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from gazelab.data.dataset import PersonDataset, SampleConfig
from gazelab.data.formats import read_gazefollow
from gazelab.data.synthetic import preset, write_dataset
from gazelab.data.targets import gaussian_heatmaps
from gazelab.data.transforms import AugmentParams, GazeAugment
from gazelab.errors import GazelabError
from gazelab.priors.store import PriorRecord, PriorStore, person_key
from gazelab.semisup import StoreSource, TwoStreamBatchSampler, hide_labels
from gazelab.semisup.dataset import PseudoLabelledImageDataset, PseudoLabelledPersonDataset, collate_two_stream
from gazelab.semisup.maps import augment_maps, map_peaks
from gazelab.types import Box


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("semisup")
    write_dataset(root, preset("small", images=12), preset_name="small")
    return root


def _frames(root: Path):
    return list(read_gazefollow(root / "train_annotations_release.txt", root=root))


def _prior_store(path: Path, frames, shift: float = 0.0) -> PriorStore:
    """A store whose maps are Gaussians at each in-frame person's gaze point (shifted), zeros when out."""
    store = PriorStore(path, create=True, meta={"kind": "test"})
    records = []
    for frame in frames:
        for i, person in enumerate(frame.people):
            if person.inout and person.gaze:
                x, y = person.gaze[0]
                point = torch.tensor([[min(x + shift, 0.99), y]], dtype=torch.float64)
                heatmap = gaussian_heatmaps(point)[0].numpy().astype(np.float16)
            else:
                heatmap = np.zeros((64, 64), np.float16)
            image, pid = person_key(frame, i)
            records.append(PriorRecord(image, pid, heatmap))
    store.write(records)
    return store


def test_hide_labels_removes_every_target_and_keeps_the_head_and_key(synth: Path):
    frames = _frames(synth)
    hidden = hide_labels(frames)
    for frame, shown in zip(frames, hidden):
        for i, (person, bare) in enumerate(zip(frame.people, shown.people)):
            assert bare.gaze == () and bare.inout is None and bare.label is None and bare.labels == ()
            assert bare.target_box is None and bare.extra == {}
            assert bare.head == person.head and person_key(shown, i) == person_key(frame, i)


def test_augment_maps_identity_flip_and_crop_follow_the_gaze_point():
    maps = torch.rand(3, 64, 64)
    assert torch.allclose(augment_maps(maps, None, (240, 320)), maps, atol=1e-6)
    flip = AugmentParams(crop=None, flip=True, jitter=None, jitter_first=False, color=())
    assert torch.allclose(augment_maps(maps, flip, (240, 320)), maps.flip(-1), atol=1e-6)
    augment = GazeAugment("gazelle")
    generator = torch.Generator().manual_seed(3)
    image = torch.zeros(3, 240, 320, dtype=torch.uint8)
    heads = torch.tensor([[0.1, 0.1, 0.2, 0.25]], dtype=torch.float64)
    gaze = torch.tensor([[[0.7, 0.6]]], dtype=torch.float64)
    moved = 0
    for _ in range(20):
        params = augment.sample(heads, gaze, (240, 320), generator)
        _, _, new_gaze = augment.apply(params, image, heads, gaze)
        target = augment_maps(gaussian_heatmaps(gaze[:, 0]), params, (240, 320))
        assert torch.allclose(map_peaks(target)[0], new_gaze[0, 0], atol=1.5 / 64)
        moved += params.crop is not None
    assert moved > 0  # some crops were drawn, so the check covered cropping


def test_store_source_modes_and_k_samples(tmp_path: Path, synth: Path):
    frames = _frames(synth)
    _prior_store(tmp_path / "a", frames)
    _prior_store(tmp_path / "b", frames, shift=0.2)
    frame = next(f for f in frames if any(p.inout for p in f.people))
    index = next(i for i, p in enumerate(frame.people) if p.inout)
    key = person_key(frame, index)
    raw = StoreSource([str(tmp_path / "a")], mode="raw")(*key, epoch=0)
    peaked = StoreSource([str(tmp_path / "a")], mode="argmax")(*key, epoch=0)
    assert raw is not None and raw.inout == 1.0 and float(raw.heatmap.max()) == pytest.approx(1.0, abs=1e-3)
    assert torch.equal(map_peaks(peaked.heatmap[None]), map_peaks(raw.heatmap[None]))
    assert StoreSource([str(tmp_path / "a")])("no/such.jpg", 0, epoch=0) is None
    both = StoreSource([str(tmp_path / "a"), str(tmp_path / "b")], seed=1)
    peaks = {tuple(map_peaks(both(*key, epoch=e).heatmap[None])[0].tolist()) for e in range(12)}
    assert len(peaks) == 2  # over epochs, both stored samples get drawn
    with pytest.raises(GazelabError, match="pseudo-label mode"):
        StoreSource([str(tmp_path / "a")], mode="median")


def test_two_stream_sampler_composition_and_epochs():
    sampler = TwoStreamBatchSampler(n_labelled=5, n_unlabelled=23, labelled_per_batch=2, unlabelled_per_batch=6)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 4
    assert all(len(b) == 8 for b in batches[:-1]) and len(batches[-1]) == 2 + 5
    assert all(i < 5 for b in batches for i in b[:2])
    unlabelled = [i for b in batches for i in b[2:]]
    assert sorted(unlabelled) == list(range(5, 28))  # every unlabelled sample exactly once per epoch
    sampler.set_epoch(1)
    assert [i for b in sampler for i in b[2:]] != unlabelled
    with pytest.raises(GazelabError, match="unlabelled stream is empty"):
        TwoStreamBatchSampler(3, 0, 1, 2)


def _scrambled(frames):
    """The same frames with every label replaced by random values (what a leak would pick up)."""
    rng = random.Random(7)
    out = []
    for frame in frames:
        people = [
            dataclasses.replace(
                p, gaze=((rng.random(), rng.random()),), inout=rng.random() < 0.5, label="vase",
                target_box=Box(0.1, 0.1, 0.2, 0.2),
            )
            for p in frame.people
        ]  # fmt: skip
        out.append(frame.with_people(people))
    return out


@pytest.mark.parametrize("kind", [PseudoLabelledPersonDataset, PseudoLabelledImageDataset])
def test_unlabelled_batches_do_not_depend_on_hidden_labels(tmp_path: Path, synth: Path, kind):
    frames = _frames(synth)
    source = StoreSource([str(_prior_store(tmp_path / "p", frames).root)])
    config = SampleConfig(image_size=64, augment="gazelle", seed=0)
    honest = kind(hide_labels(frames), source, config)
    leaked = kind(hide_labels(_scrambled(frames)), source, config)
    assert len(honest) == len(leaked) > 0
    for i in range(len(honest)):
        a, b = honest[i], leaked[i]
        for name in ("image", "heads", "gaze", "inout", "heatmaps"):
            assert torch.equal(a[name], b[name]), name
    first = honest[0]
    assert first["heatmaps"].shape[-2:] == (64, 64) and float(first["heatmaps"].max()) <= 1.0
    assert torch.all(first["gaze"] == -1) and torch.all(first["labelled"] == 0)


def test_two_stream_collate_marks_the_streams(tmp_path: Path, synth: Path):
    frames = _frames(synth)
    source = StoreSource([str(_prior_store(tmp_path / "p", frames).root)])
    config = SampleConfig(image_size=64, augment=None)
    labelled = PersonDataset(frames[:3], config)
    unlabelled = PseudoLabelledPersonDataset(hide_labels(frames[3:]), source, config)
    truth = PersonDataset(frames[3:], config)
    inside = next(i for i in range(len(truth)) if truth[i]["inout"][0] == 1)
    batch = collate_two_stream([labelled[0], labelled[1], unlabelled[inside]])
    assert batch["labelled"].tolist() == [1.0, 1.0, 0.0]
    assert batch["inout"][2] == 1.0  # the prior's estimate, not the hidden label
    # Without augmentation the pseudo-label (a Gaussian at the true point) peaks where the GT map does.
    assert torch.equal(map_peaks(batch["heatmaps"][2:]), map_peaks(truth[inside]["heatmaps"]))


def test_two_stream_sampler_shares_an_epoch_between_processes_and_sets_the_dataset_epoch():
    class Recorder:
        epoch = -1

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

    recorder = Recorder()
    ranks = [TwoStreamBatchSampler(4, 20, 1, 5, num_replicas=2, rank=r, dataset=recorder) for r in range(2)]
    for sampler in ranks:
        sampler.set_epoch(3)
    assert recorder.epoch == 3
    seen = [i for sampler in ranks for b in sampler for i in b[1:]]
    assert len(ranks[0]) == len(ranks[1]) == 2 and sorted(seen) == list(range(4, 24))


def test_teacher_store_holds_the_models_maps_and_resumes(tmp_path: Path, synth: Path):
    from gazelab.models import create_model
    from gazelab.semisup.teacher import write_teacher_store

    frames = _frames(synth)[:4]
    torch.manual_seed(0)
    model = create_model("gazelle_tiny_inout").eval()
    store = write_teacher_store(model, frames[:2], tmp_path / "t", chunk=1)
    first = {r.key: r.heatmap.copy() for r in store}
    store = write_teacher_store(model, frames, tmp_path / "t", chunk=1)
    people = sum(len(f.people) for f in frames)
    assert len(store) == people and all(np.array_equal(store.get(*k).heatmap, v) for k, v in first.items())
    record = next(iter(store))
    assert record.heatmap.shape == (64, 64) and 0 <= record.heatmap.min() and record.heatmap.max() <= 1
