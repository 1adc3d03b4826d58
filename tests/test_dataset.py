"""Datasets and collate functions on a tiny dataset written on the fly (images + a GazeFollow file)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import write_image
from torch.utils.data import DataLoader

from gazelab.data.dataset import (
    ImageDataset,
    PersonDataset,
    SampleConfig,
    SequenceDataset,
    collate_people,
    collate_sequences,
)
from gazelab.data.formats.gazefollow import read_gazefollow, write_gazefollow
from gazelab.data.targets import annotator_heatmaps, gaussian_heatmaps
from gazelab.data.transforms import PRESETS
from gazelab.errors import DataError
from gazelab.types import Box, Frame, Person

SIZES = {"img/a.jpg": (64, 48), "img/b.jpg": (80, 40), "img/c.jpg": (40, 60)}


def _frames(root: Path, annotators: int = 1) -> list[Frame]:
    for i, (rel, size) in enumerate(SIZES.items()):
        write_image(root / rel, size, seed=i)
    a = Frame("img/a.jpg", 64, 48, root=root)
    a.people = [
        Person(Box.from_pixels(10, 10, 20, 22, 64, 48), gaze=((0.75, 0.5),), inout=True),
        Person(Box.from_pixels(30, 5, 40, 15, 64, 48), inout=False),
    ]
    b = Frame("img/b.jpg", 80, 40, root=root)
    points = tuple((0.1 + 0.1 * k, 0.2 + 0.05 * k) for k in range(annotators))
    b.people = [Person(Box.from_pixels(60, 4, 72, 16, 80, 40), gaze=points, inout=True)]
    c = Frame("img/c.jpg", 40, 60, root=root)
    c.people = [Person(Box.from_pixels(2, 40, 12, 52, 40, 60), gaze=((0.9, 0.1),), inout=True)]
    return [a, b, c]


@pytest.fixture
def train_frames(tmp_path: Path) -> list[Frame]:
    write_gazefollow(_frames(tmp_path), tmp_path / "train.txt", split="train")
    return list(read_gazefollow(tmp_path / "train.txt", check_images=True))


def test_person_dataset_gives_one_plain_sample_per_person(train_frames: list[Frame]) -> None:
    dataset = PersonDataset(train_frames)
    assert len(dataset) == 4 and len(PersonDataset(train_frames, in_frame_only=True)) == 3
    first, second = dataset[0], dataset[1]
    assert first["image"].shape == (3, 48, 64) and first["image"].dtype == torch.uint8
    assert torch.allclose(first["heads"], torch.tensor([[10 / 64, 10 / 48, 20 / 64, 22 / 48]]))
    assert first["gaze"].tolist() == [[[0.75, 0.5]]] and first["inout"].tolist() == [1.0]
    expected = gaussian_heatmaps(torch.tensor([[0.75, 0.5]], dtype=torch.float64))
    assert torch.equal(first["heatmaps"], expected)
    assert second["gaze"].tolist() == [[[-1.0, -1.0]]] and second["inout"].tolist() == [0.0]
    assert not second["heatmaps"].any() and second["person_index"].tolist() == [1]
    assert first["size"].tolist() == [64, 48] and first["path"] == "img/a.jpg"


def test_collate_people_stacks_resized_images_and_pads_annotators(train_frames: list[Frame]) -> None:
    dataset = PersonDataset(train_frames, SampleConfig(image_size=32))
    batch = next(iter(DataLoader(dataset, batch_size=3, collate_fn=collate_people)))
    assert batch["images"].shape == (3, 3, 32, 32)
    assert batch["gaze"].shape == (3, 20, 2) and (batch["gaze"][:, 1:] == -1).all()
    assert batch["image_index"].tolist() == [0, 1, 2] and batch["heatmaps"].shape == (3, 64, 64)
    assert batch["sizes"].tolist() == [[64, 48], [64, 48], [80, 40]]
    assert torch.allclose(batch["heads"][2], torch.tensor([60 / 80, 4 / 40, 72 / 80, 16 / 40]))


def test_image_dataset_keeps_every_person_of_an_image_together(train_frames: list[Frame]) -> None:
    dataset = ImageDataset(train_frames)
    assert len(dataset) == 3
    batch = collate_people([dataset[i] for i in range(3)])
    assert isinstance(batch["images"], list) and [im.shape[1:] for im in batch["images"]] == [
        (48, 64),
        (40, 80),
        (60, 40),
    ]
    assert batch["image_index"].tolist() == [0, 0, 1, 2] and batch["person_index"].tolist() == [0, 1, 0, 0]
    assert batch["inout"].tolist() == [1.0, 0.0, 1.0, 1.0] and batch["paths"] == list(SIZES)


def test_test_split_annotators_reach_the_batch_and_the_aggregated_map(tmp_path: Path) -> None:
    frames = _frames(tmp_path, annotators=3)
    frames[0].people.pop()  # test files have no out-of-frame people
    write_gazefollow(frames, tmp_path / "test.txt", split="test")
    frames = list(read_gazefollow(tmp_path / "test.txt", check_images=True))
    dataset = ImageDataset(frames, SampleConfig(heatmap_rule="chong"))
    sample = dataset[1]
    assert sample["gaze"].shape == (1, 3, 2)
    points = torch.tensor([[[0.1, 0.2], [0.2, 0.25], [0.3, 0.3]]], dtype=torch.float64)
    assert torch.allclose(sample["gaze"].double(), points)
    assert torch.equal(sample["heatmaps"], annotator_heatmaps(points, rule="chong"))
    batch = collate_people([dataset[0], sample])
    assert batch["gaze"].shape == (2, 20, 2) and torch.allclose(batch["gaze"][1, :3].double(), points[0])
    assert (batch["gaze"][1, 3:] == -1).all()


def test_augmentation_is_seeded_per_sample_and_epoch(train_frames: list[Frame]) -> None:
    config = SampleConfig(augment=replace(PRESETS["vat"], crop_p=1.0), seed=3)
    dataset = PersonDataset(train_frames, config)
    again = PersonDataset(train_frames, config)
    for i in range(len(dataset)):
        a, b = dataset[i], again[i]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["heads"], b["heads"])
    before = [dataset[i]["heads"] for i in range(len(dataset))]
    dataset.set_epoch(1)
    after = [dataset[i]["heads"] for i in range(len(dataset))]
    assert any(not torch.equal(x, y) for x, y in zip(before, after))
    # The target follows the augmented point.
    sample = dataset[0]
    assert torch.equal(sample["heatmaps"], gaussian_heatmaps(sample["gaze"][0, :1].double())[None, 0])


def test_people_without_box_are_left_out_and_in_frame_without_point_is_an_error(tmp_path: Path) -> None:
    frames = _frames(tmp_path)
    frames[2].people.append(Person(None, inout=None))
    assert len(PersonDataset(frames)) == 4
    frames[2].people.append(Person(Box(0.1, 0.1, 0.2, 0.2), inout=True))
    with pytest.raises(DataError, match="img/c.jpg: person 2 is in frame but has no normalized gaze point"):
        PersonDataset(frames)


def _clip(root: Path) -> list[Frame]:
    frames = []
    for index in range(7):
        rel = f"images/show/clip/{index:05d}.jpg"
        write_image(root / rel, (60, 40), seed=index)
        people = [Person(Box(0.1 + 0.05 * index, 0.2, 0.2 + 0.05 * index, 0.35), ((0.9, 0.8),), True, track_id="p1")]
        if index >= 4:
            people.append(Person(Box(0.6, 0.1, 0.7, 0.3), (), False, track_id="p2"))
        frames.append(Frame(rel, 60, 40, people, frame_index=index, clip="show/clip", root=root))
    frames.append(Frame("images/still.jpg", 60, 40, [Person(Box(0.1, 0.1, 0.2, 0.2), ((0.5, 0.5),), True)], root=root))
    return frames[::-1]  # input order must not matter


def test_sequence_windows_follow_tracks_in_frame_order(tmp_path: Path) -> None:
    dataset = SequenceDataset(_clip(tmp_path), length=3, stride=3)
    assert [(track, len(members)) for track, members in dataset.windows] == [
        ("show/clip/p1", 3), ("show/clip/p1", 3), ("show/clip/p1", 1), ("show/clip/p2", 3)
    ]  # fmt: skip
    sample = dataset[1]
    assert sample["paths"] == [f"images/show/clip/{i:05d}.jpg" for i in (3, 4, 5)]
    assert sample["images"].shape == (3, 3, 40, 60) and sample["heatmaps"].shape == (3, 64, 64)
    assert torch.allclose(sample["heads"][:, 0], torch.tensor([0.25, 0.3, 0.35]))
    assert len(SequenceDataset(_clip(tmp_path), length=3, stride=2).windows) == 3 + 1  # 0-3, 2-5, 4-7 | p2


def test_sequence_augmentation_is_shared_and_collate_pads_with_a_mask(tmp_path: Path) -> None:
    config = SampleConfig(augment=replace(PRESETS["vat"], crop_p=1.0, flip_p=1.0), seed=1)
    dataset = SequenceDataset(_clip(tmp_path), length=3, stride=3, config=config)
    sample = dataset[0]
    # One crop and flip for all frames: the gaze points (0.9) are mirrored, and the head boxes, 0.05 apart
    # before, are still equally spaced (same crop scale) and in reverse order (same flip).
    assert (sample["gaze"][:, 0, 0] < 0.5).all()
    steps = sample["heads"][1:, 2] - sample["heads"][:-1, 2]
    assert (steps < 0).all() and torch.allclose(steps[0], steps[1])
    assert isinstance(collate_sequences([dataset[0], dataset[2]])["images"], list)  # crops differ in size
    resized = SequenceDataset(_clip(tmp_path), length=3, stride=3, config=replace(config, image_size=32))
    batch = collate_sequences([resized[0], resized[2]])
    assert batch["frame_mask"].tolist() == [[True] * 3, [True, False, False]]
    assert batch["images"].shape == (2, 3, 3, 32, 32) and batch["gaze"].shape == (2, 3, 20, 2)
    assert (batch["inout"][1, 1:] == -1).all() and not batch["heatmaps"][1, 1:].any()
    assert batch["tracks"] == ["show/clip/p1", "show/clip/p1"]
