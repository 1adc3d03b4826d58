"""VQA Grad-CAM priors with a tiny random-weight BLIP built from a config (no download), and the key-noun rule."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from gazelab.cli import main
from gazelab.errors import GazelabError
from gazelab.priors.gradcam import CamSettings, attention_cam, grid_heatmaps
from gazelab.priors.keynoun import KeyNoun, rule_key_noun, tagged_key_noun
from gazelab.priors.pickle_import import import_reference_pickle
from gazelab.priors.sources import load_frames
from gazelab.priors.store import PriorStore, person_key
from gazelab.priors.vqa import draw_box, load_blip, person_box
from gazelab.types import Box, Person

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "what", "is", "the", "person", "in", "green",
         "bounding", "box", "looking", "at", "?", "a", "cup", "cell", "phone", "his", "man", "on", "left", "table",
         "tv", "##s", "book", "window", "ball", "laptop", "camera", "of", "coffee", "lap", "##top"]  # fmt: skip
FAST = CamSettings(num_beams=1, max_answer_tokens=3)


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-layer BLIP VQA with 64 px images (4x4 patches) saved like a Hub checkpoint."""
    from transformers import BertTokenizerFast, BlipConfig, BlipForQuestionAnswering, BlipImageProcessor, BlipProcessor

    folder = tmp_path_factory.mktemp("blip")
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    tokenizer = BertTokenizerFast(str(folder / "vocab.txt"), bos_token="[DEC]")
    processor = BlipProcessor(image_processor=BlipImageProcessor(size={"height": 64, "width": 64}), tokenizer=tokenizer)
    text = {"vocab_size": len(WORDS), "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2,
            "intermediate_size": 64, "encoder_hidden_size": 32, "max_position_embeddings": 32,
            "bos_token_id": WORDS.index("[DEC]"), "sep_token_id": WORDS.index("[SEP]"), "pad_token_id": 0}  # fmt: skip
    vision = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
              "image_size": 64, "patch_size": 16}  # fmt: skip
    torch.manual_seed(0)
    model = BlipForQuestionAnswering(BlipConfig(text_config=text, vision_config=vision, projection_dim=32))
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    ("answer", "word"),
    [
        ("a cell phone", "phone"),
        ("his phone", "phone"),
        ("the man on the left", "man"),
        ("tv", "tv"),
        ("looking at the camera", "camera"),
        ("the woman's hand", "hand"),
        ("a cup of coffee", "cup"),
        ("laptop screen", "screen"),
        ("book.", "book"),
        ("the", "the"),
    ],
)
def test_key_noun_rule_on_real_answers(answer: str, word: str) -> None:
    noun = rule_key_noun(answer)
    assert noun is not None and noun.word == word and answer[noun.start : noun.end] == word
    assert rule_key_noun("  ") is None


def test_tagged_rule_takes_the_last_word_of_the_first_noun_run() -> None:
    tags = {"a": "DET", "tennis": "NOUN", "racket": "NOUN", "on": "ADP", "table": "NOUN", "red": "ADJ"}

    def nlp(text: str) -> list[SimpleNamespace]:  # a stand-in for a spaCy pipeline: tokens with tags and offsets
        words = [(m.group(), m.start()) for m in re.finditer(r"\w+", text)]
        return [SimpleNamespace(text=w, idx=i, pos_=tags[w], is_punct=False, is_space=False) for w, i in words]

    assert tagged_key_noun("a tennis racket on table", nlp) == KeyNoun("racket", 9, 15)
    assert tagged_key_noun("a red", nlp) == KeyNoun("red", 2, 5)  # no noun: the last word
    assert tagged_key_noun("", nlp) is None


def test_cam_is_relu_of_gradient_times_attention() -> None:
    attention = torch.tensor([[[[0.5, 0.25, 0.25], [0.2, 0.2, 0.6]]]])  # 1 image, 1 head, 2 queries, 3 tokens
    grads = torch.tensor([[[[1.0, -1.0, 2.0], [0.0, 1.0, 1.0]]]])
    cam = attention_cam([attention], [grads], torch.tensor([[1, 0]]))  # second query masked out
    torch.testing.assert_close(cam, torch.tensor([[0.5, 0.0, 0.5]]))
    maps, valid = grid_heatmaps(torch.zeros(2, 17))
    assert maps.shape == (2, 64, 64) and not valid.any() and maps.abs().sum() == 0


def _image() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8))


def test_blip_cam_shape_range_and_box_dependence(tiny_blip: Path) -> None:
    backend = load_blip(str(tiny_blip), settings=FAST)
    boxes = [Box(0.05, 0.05, 0.3, 0.5), Box(0.6, 0.4, 0.95, 0.95)]
    images = [draw_box(_image(), b) for b in boxes]
    assert np.asarray(images[0])[int(0.05 * 96) + 1, 20].tolist() == [0, 255, 0]  # the green outline
    answers, maps, valid = backend.explain(images, FAST.question, answers=["a cell phone", "a cell phone"])
    assert answers == ["a cell phone", "a cell phone"] and valid.all()
    assert maps.shape == (2, 64, 64) and maps.min() >= 0 and maps.amax(dim=(1, 2)).tolist() == [1.0, 1.0]
    assert (maps[0] - maps[1]).abs().max() > 1e-3  # another box, another map
    said, generated, ok = backend.explain(images[:1], FAST.question)  # decoded answer
    assert isinstance(said[0], str) and generated.shape == (1, 64, 64)
    _, none, usable = backend.explain(images[:1], FAST.question, answers=[""])
    assert not usable.any() and none.abs().sum() == 0


def test_person_box_falls_back_to_an_enlarged_head() -> None:
    head = Box(0.4, 0.4, 0.5, 0.5)
    assert person_box(Person(head, body=Box(0.3, 0.3, 0.6, 0.9)), (100, 100), "body") == Box(0.3, 0.3, 0.6, 0.9)
    enlarged = person_box(Person(head), (100, 100), "body")
    assert enlarged is not None and enlarged.width == pytest.approx(0.15)
    assert enlarged.center == pytest.approx(head.center)
    assert person_box(Person(None, head_px=(10, 20, 30, 40)), (100, 200), "head") == Box(0.1, 0.1, 0.3, 0.2)


def _exit(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return int(exit_info.value.code or 0)


def test_prior_run_cli_resumes_and_reports(tiny_blip: Path, tmp_path: Path) -> None:
    assert _exit(["synth", "--out", str(tmp_path / "d"), "--images", "4", "--seed", "1"]) == 0
    data, store = tmp_path / "d", tmp_path / "g"
    run = ["prior", "run", str(data), "--out", str(store), "--model", str(tiny_blip), "--beams", "1",
           "--max-answer-tokens", "3", "--batch-size", "3", "--layers", "-1,-2"]  # fmt: skip
    assert _exit([*run, "--shard", "0/2"]) == 0
    first = PriorStore(store)
    assert _exit(run) == 0  # resumes: only the other shard's people are new
    frames, _ = load_frames(data)
    done = PriorStore(store)
    assert done.keys() == {person_key(f, i) for f in frames for i in range(len(f.people))}
    assert all(np.array_equal(done.get(*k).heatmap, first.get(*k).heatmap) for k in first.keys())  # type: ignore[union-attr]
    assert done.meta["kind"] == "gradcam" and done.meta["layers"] == [-1, -2]
    assert _exit(["prior", "report", str(store), "--data", str(data / "test_annotations_release.txt")]) == 0
    assert _exit([*run, "--layers", "-1"]) == 2  # other parameters than the store's


def test_offline_model_and_untrusted_pickle_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(GazelabError, match="HF_HOME"):
        load_blip(str(tmp_path / "no-such-model"))
    assert _exit(["prior", "import-pickle", str(tmp_path / "x.pkl"), "--data", "x", "--out", str(tmp_path / "o")]) == 2


def test_reference_pickle_import_matches_people_by_eye(tmp_path: Path) -> None:
    assert _exit(["synth", "--out", str(tmp_path / "d"), "--images", "3", "--seed", "2"]) == 0
    annotations = tmp_path / "d" / "train_annotations_release.txt"
    frames, _ = load_frames(annotations)
    reference: dict = {}
    for frame in frames:
        for person in frame.people:
            grid = np.zeros((30, 30), np.float32)
            grid[3, 20] = 1.0
            maps = {"9th_layer": grid * 0, "10th_layer": torch.from_numpy(grid), "11th_layer": grid}
            reference.setdefault(frame.path.split("/")[-1], {})[person.eye[0]] = {"answer": "a cup", **maps}
    reference["unknown.jpg"] = {0.5: {"answer": "x", "10th_layer": np.ones((30, 30))}}
    (tmp_path / "ref.pkl").write_bytes(pickle.dumps(reference))
    store, unmatched = import_reference_pickle(tmp_path / "ref.pkl", frames, tmp_path / "s")
    assert unmatched == 1 and len(store) == sum(len(f.people) for f in frames)
    record = store.get(*person_key(frames[0], 0))
    assert record is not None and record.answer == "a cup" and record.valid
    row, col = np.unravel_index(int(np.argmax(record.heatmap)), (64, 64))
    assert abs(row - 3.5 * 64 / 30) <= 2 and abs(col - 20.5 * 64 / 30) <= 2
    flat, _ = import_reference_pickle(tmp_path / "ref.pkl", frames, tmp_path / "s9", layer="9th_layer")
    assert not any(r.valid for r in flat)
