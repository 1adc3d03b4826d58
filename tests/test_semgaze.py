"""SemGaze: multi-person decoding, the label vocabulary (a tiny random CLIP text model, no download), its loss
terms by hand, the temperature clamp, a training step on synthetic GazeHOI data, and ``predict --labels``."""

from __future__ import annotations

import json
import math
import string
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gazelab.cli import main
from gazelab.data.dataset import ImageDataset, SampleConfig, collate_people
from gazelab.data.formats.gazehoi import read_gazehoi, read_vocab, write_gazehoi
from gazelab.data.synthetic import preset, write_dataset
from gazelab.data.synthetic_draw import VOCABULARY
from gazelab.errors import GazelabError
from gazelab.models import GazeOutput, create_model
from gazelab.models.semgaze import person_slots
from gazelab.models.vocab import build_vocabulary, cache_path, encode_texts
from gazelab.train.losses_semgaze import MAX_LOGIT_SCALE, angular, info_nce
from gazelab.train.module import GazeModule

LOSSES = {"heatmap_mse_semgaze": 1000.0, "angular": 3.0, "info_nce": 1.0}


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("semgaze_tiny").eval()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    write_dataset(out, preset("small", images=6, seed=3))
    return out


def test_person_slots_place_people_in_order_of_appearance() -> None:
    slots, mask = person_slots(torch.tensor([1, 0, 1, 1, 0]), images=3)
    assert slots.tolist() == [0, 0, 1, 2, 1]
    assert mask.tolist() == [[True, True, False], [True, True, True], [False, False, False]]


def test_decode_takes_any_number_of_people_per_image(tiny: torch.nn.Module) -> None:
    """Each image's people, decoded together with other images (padded, masked slots), equal the reference
    forward on that image alone; the outputs have the documented ranges."""
    generator = torch.Generator().manual_seed(1)
    images = [torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8, generator=generator) for _ in range(3)]
    heads = [[(0.1, 0.1, 0.3, 0.4)], [(0.5, 0.1, 0.7, 0.4), (0.2, 0.5, 0.35, 0.8), None], [(0.6, 0.6, 0.8, 0.9)]]
    with torch.no_grad():
        inputs = tiny.prepare(images, heads)
        out = tiny(inputs)
        start = 0
        for index, people in enumerate(heads):
            rows = slice(start, start + len(people))
            alone = tiny.run(inputs.images[index : index + 1], inputs.people.extras["crops"][rows][None],
                             inputs.people.boxes[rows][None])  # fmt: skip
            assert torch.allclose(out.gaze_vector[rows], alone.gaze_vec[0], atol=1e-5)
            assert torch.allclose(out.label_embedding[rows], alone.label_emb[0], atol=1e-5)
            raw = alone.heatmap[0].clamp(min=0)
            assert torch.allclose(out.heatmap[rows], raw / raw.amax(dim=(1, 2), keepdim=True).clamp(min=1), atol=1e-5)
            start += len(people)
    assert out.heatmap.shape == (5, 64, 64) and float(out.heatmap.min()) >= 0 and float(out.heatmap.max()) <= 1
    assert torch.allclose(out.gaze_vector.norm(dim=1), torch.ones(5), atol=1e-5)
    assert torch.allclose(out.label_embedding.norm(dim=1), torch.ones(5), atol=1e-5)
    assert inputs.people.boxes[3].tolist() == [0.0, 0.0, 1.0, 1.0]  # no box: the whole picture


def test_lightning_checkpoints_import_strictly(tiny: torch.nn.Module, tmp_path: Path) -> None:
    """``model.``-prefixed weights under ``state_dict`` load (Lightning-module keys ignored, the fixed position
    embedding recomputed); a file missing a weight or from another width is refused with the key named."""
    state = {f"model.{k}": v for k, v in tiny.state_dict().items()}
    state["model.image_tokenizer.pos_emb"] = tiny.image_tokenizer.pos_emb.clone()
    state["semantic.logit_scale"] = torch.tensor(2.0)
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "good.ckpt")
    loaded = create_model("semgaze_tiny", pretrained=tmp_path / "good.ckpt")
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in tiny.state_dict().items())
    del state["model.gaze_decoder.label_mlp.layers.5.bias"]
    torch.save({"state_dict": state}, tmp_path / "bad.ckpt")
    with pytest.raises(GazelabError, match="missing keys: gaze_decoder.label_mlp.layers.5.bias"):
        create_model("semgaze_tiny", pretrained=tmp_path / "bad.ckpt")
    with pytest.raises(GazelabError, match=r"pos_emb has shape \(1, 64, 16, 16\), the model needs \(1, 768"):
        create_model("semgaze_gazefollow", pretrained=tmp_path / "good.ckpt")


def _tiny_clip(folder: Path) -> Path:
    """A random 2-layer CLIP text tower with a character-level tokenizer, saved like a Hugging Face model."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in string.ascii_lowercase + " ":
        vocab[char] = len(vocab)
        vocab[char + "</w>"] = len(vocab)
    config = CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=2, projection_dim=512, bos_token_id=0, eos_token_id=1,
                            pad_token_id=1)  # fmt: skip
    torch.manual_seed(0)
    CLIPTextModelWithProjection(config).save_pretrained(folder)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(folder)
    return folder


def test_clip_vocabulary_is_sorted_normalised_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gazelab.models.vocab import load_text_model

    monkeypatch.setenv("GAZELAB_HOME", str(tmp_path / "home"))
    folder = str(_tiny_clip(tmp_path / "clip"))
    vocab = build_vocabulary(["phone", "cup", "cell phone", "cup"], folder)
    assert vocab.labels == ("cell phone", "cup", "phone")
    assert vocab.embeddings.shape == (3, 512)
    assert torch.allclose(vocab.embeddings.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(vocab.embeddings, encode_texts(vocab.labels, *load_text_model(folder)), atol=1e-6)
    assert not torch.allclose(vocab.embeddings[0], vocab.embeddings[2], atol=1e-3)  # different names differ
    assert cache_path(folder, vocab.labels).is_file()
    for file in Path(folder).iterdir():  # the model is gone: the second build must come from the cache
        file.unlink()
    again = build_vocabulary(["cup", "phone", "cell phone"], folder)
    assert torch.equal(again.embeddings, vocab.embeddings)
    with pytest.raises(GazelabError, match="could not load the CLIP text model"):
        build_vocabulary(["something new"], folder)


def test_vocab2id_must_match_the_vocabulary_order(synthetic: Path) -> None:
    vocab = build_vocabulary([c.name for c in VOCABULARY], "random")
    vocab.check_vocab2id(read_vocab(synthetic / "vocab2id.json"))
    swapped = {**vocab.ids, "ball": 1, "book": 0}
    with pytest.raises(GazelabError, match="disagree"):
        vocab.check_vocab2id(swapped)
    assert vocab.label_ids(["cup", None, "ball"]).tolist() == [4, -1, 0]
    with pytest.raises(GazelabError, match="not in the vocabulary"):
        vocab.label_ids(["spaceship"])


def test_info_nce_and_angular_by_hand() -> None:
    vocab = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), dim=1)
    emb = F.normalize(torch.tensor([[1.0, 0.2], [0.3, 1.0], [0.5, 0.5]]), dim=1)
    output = GazeOutput(heatmap=torch.zeros(3, 64, 64), label_embedding=emb, gaze_vector=torch.tensor(
        [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))  # fmt: skip
    batch = {"inout": torch.tensor([1.0, 1.0, 0.0]), "label_ids": torch.tensor([2, 0, 1]), "label_vocab": vocab,
             "logit_scale": torch.tensor(math.log(10.0)),
             "heads": torch.tensor([[0.4, 0.4, 0.6, 0.6]] * 3),
             "gaze": torch.tensor([[[0.5, 0.9], [-1, -1]], [[0.5, 0.9], [-1, -1]],
                                   [[0.9, 0.5], [-1, -1]]])}  # fmt: skip
    # People 0 and 1 count (person 2 is out of frame): classes {0, 2}, in sorted order -> targets [1, 0].
    logits = emb[:2] @ vocab[[0, 2]].T * 10.0
    want = -(logits[0].log_softmax(0)[1] + logits[1].log_softmax(0)[0]) / 2
    assert torch.allclose(info_nce(output, batch), want, atol=1e-6)
    # GT direction is straight down (0, 1): person 0 looks right (cos 0 -> 0.5), person 1 down (cos 1 -> 0).
    assert torch.allclose(angular(output, batch), torch.tensor(0.25), atol=1e-6)
    batch["label_ids"] = torch.tensor([1, 1, -1])  # a single class: nothing to contrast, the loss is zero
    assert float(info_nce(output, batch)) == pytest.approx(0.0, abs=1e-6)


def test_a_training_step_learns_where_what_and_the_temperature_which_stays_clamped(synthetic: Path) -> None:
    frames = list(read_gazehoi(synthetic / "train-annotations.csv"))
    module = GazeModule(name="semgaze_tiny", train_backbone=True, losses=LOSSES, protocol="gazefollow",
                        vocabulary=str(synthetic / "vocab2id.json"), text_model="random")  # fmt: skip
    batch = collate_people([ImageDataset(frames, SampleConfig(image_size=128))[i] for i in range(3)])
    module.train()
    losses = module.loss(module(batch), batch)
    assert set(losses) == {*LOSSES, "total"} and all(torch.isfinite(v) for v in losses.values())
    assert float(losses["info_nce"].detach()) > 0
    losses["total"].backward()
    assert module.semantic.logit_scale.grad is not None and float(module.semantic.logit_scale.grad) != 0
    assert module.model.gaze_encoder.gaze_predictor[0].weight.grad.abs().sum() > 0
    with torch.no_grad():
        module.semantic.logit_scale.fill_(6.0)
    module.on_train_batch_end(None, batch, 0)
    assert float(module.semantic.logit_scale) == pytest.approx(MAX_LOGIT_SCALE)


def test_gazehoi_round_trip_of_a_generated_file(synthetic: Path, tmp_path: Path) -> None:
    first = read_gazehoi(synthetic / "train-annotations.csv")
    people = [p for f in first for p in f.people]
    names = {c.name for c in VOCABULARY}
    assert people and all(p.label in names and p.inout is True for p in people)
    for person in people:
        assert person.target_box.contains(person.gaze_point)  # the GT point is the object centre
    copy = write_gazehoi(first, tmp_path / "train-annotations.csv")
    second = read_gazehoi(copy, root=synthetic)
    again = [p for f in second for p in f.people]
    assert [(p.label, p.labels) for p in again] == [(p.label, p.labels) for p in people]
    for a, b in zip(again, people):
        assert max(abs(x - y) for x, y in zip(a.head.as_tuple(), b.head.as_tuple())) < 2e-3
        assert max(abs(x - y) for x, y in zip(a.gaze_point, b.gaze_point)) < 2e-3


def _predict(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", *args])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_predict_prints_draws_and_saves_the_top3_labels(synthetic: Path, tmp_path: Path, capsys) -> None:
    image = next((synthetic / "train").rglob("*.jpg"))
    heads = "0.1,0.1,0.2,0.25;0.6,0.2,0.7,0.35"
    code, out, err = _predict(capsys, str(image), "--model", "semgaze_tiny", "--weights", "none", "--heads", heads,
                              "--labels", "cup,phone,screen", "--text-model", "random",
                              "--out", str(tmp_path))  # fmt: skip
    assert code == 0, err
    lines = [line for line in out.splitlines() if ": person " in line]
    assert len(lines) == 2 and all(line.count("(") == 3 for line in lines)
    record = json.loads((tmp_path / f"{image.stem}.json").read_text())
    for person in record["people"]:
        assert sorted(name for name, _ in person["labels"]) == ["cup", "phone", "screen"]
        scores = [score for _, score in person["labels"]]
        assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    assert (tmp_path / f"{image.stem}.png").is_file()

    code, _, err = _predict(capsys, str(image), "--model", "gazelle_tiny", "--weights", "none", "--labels", "cup",
                            "--text-model", "random", "--out", str(tmp_path))  # fmt: skip
    assert code == 2 and "predicts no labels" in err


@pytest.mark.parametrize("recipe", ["gazefollow", "gazehoi"])
def test_semgaze_recipes_have_the_published_settings(recipe: str) -> None:
    from gazelab.train.cli import GazeCLI, build_cli

    class ParseOnly(GazeCLI):
        def instantiate_classes(self) -> None:
            pass

    config = Path(__file__).resolve().parents[1] / "configs" / "semgaze" / f"{recipe}.yaml"
    parsed = build_cli(["--config", str(config)], cli_class=ParseOnly).config
    model, data = parsed.model, parsed.data
    assert model.name == f"semgaze_{recipe}" and model.losses == LOSSES
    assert (model.optimizer, model.lr, model.weight_decay, model.scheduler) == ("adamw", 2e-4, 3e-3, "cosine")
    assert model.text_model == "openai/clip-vit-base-patch16" and model.train_backbone
    assert (parsed.trainer.max_epochs, data.batch_size, data.image_size, data.augment) == (20, 300, 256, "semgaze")
    (swa,) = parsed.trainer.callbacks
    assert swa.class_path.endswith("StochasticWeightAveraging") and swa.init_args.swa_epoch_start == 17


def _tiny_pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    """``semgaze_tiny``'s gaze field model (labels from the token alone) and the same weights without the field."""
    from dataclasses import replace

    from gazelab.models.registry import SEMGAZE_TINY
    from gazelab.models.semgaze import SemGaze

    torch.manual_seed(0)
    with_field = SemGaze(replace(SEMGAZE_TINY, label_at_target=False)).eval()
    plain = SemGaze(replace(SEMGAZE_TINY, gaze_field=False, label_at_target=False)).eval()
    missing, unexpected = plain.load_state_dict(with_field.state_dict(), strict=False)
    assert not missing and unexpected and all("field_" in key for key in unexpected)
    return with_field, plain


def _field_inputs(model: torch.nn.Module):
    generator = torch.Generator().manual_seed(2)
    images = [torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8, generator=generator) for _ in range(2)]
    return model.prepare(images, [[(0.05, 0.4, 0.15, 0.6), None], [(0.4, 0.1, 0.6, 0.3)]])


def test_gaze_field_is_off_in_published_models_and_only_biases_attention_and_gates_heatmaps() -> None:
    """With zero attention weights the field model is the plain decoder, its heatmaps gated by the field."""
    from gazelab.models.gaze_field import FIELD_GAMMAS, gaze_field

    assert not any("field_" in key for key in create_model("semgaze_gazefollow").state_dict())
    with_field, plain = _tiny_pair()
    inputs = _field_inputs(with_field)
    crops, boxes = inputs.people.extras["crops"][:2][None], inputs.people.boxes[:2][None]
    with torch.no_grad():
        before = with_field.run(inputs.images[:1], crops, boxes)
        for name, param in with_field.named_parameters():
            if "field_scale" in name:
                param.zero_()
        zeroed, reference = with_field.run(inputs.images[:1], crops, boxes), plain.run(inputs.images[:1], crops, boxes)
        field = gaze_field(boxes[0], reference.gaze_vec[0], 64, 64, FIELD_GAMMAS)
        gate = torch.einsum("pgrc,g->prc", field, with_field.gaze_decoder.field_heatmap)
    assert torch.allclose(zeroed.label_emb, reference.label_emb, atol=1e-6)
    assert torch.allclose(zeroed.heatmap[0], reference.heatmap[0] * gate, atol=1e-6)
    assert not torch.allclose(before.label_emb, reference.label_emb, atol=1e-4)  # the attention bias acts


def test_gaze_field_pulls_a_persons_attention_along_the_gaze(monkeypatch: pytest.MonkeyPatch) -> None:
    """A person in the middle looking right puts more of its last attention on the right half of the image with the
    field than with zero field weights; looking left, less."""
    import gazelab.models.semgaze_decoder as decoder

    recorded: list[torch.Tensor] = []

    def attention(q, k, v, attn_mask=None):
        logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        if attn_mask is not None:
            logits = logits + attn_mask if attn_mask.dtype != torch.bool else logits.masked_fill(~attn_mask, -1e9)
        weights = logits.softmax(-1)
        recorded.append(weights)
        return weights @ v

    monkeypatch.setattr(decoder.F, "scaled_dot_product_attention", attention)
    with_field, _ = _tiny_pair()
    torch.manual_seed(3)
    image = torch.randn(1, 64, 16, 16)
    people = torch.randn(1, 1, 64)
    boxes = torch.tensor([[[0.45, 0.4, 0.55, 0.6]]])

    def right_half_share(direction: tuple[float, float], scaled: bool) -> float:
        recorded.clear()
        with torch.no_grad():
            if not scaled:
                for name, param in with_field.gaze_decoder.named_parameters():
                    if "field_" in name:
                        param.zero_()
            with_field.gaze_decoder(image, people, None, (boxes, torch.tensor([[direction]])))
        final = recorded[-1][0, :, 0].reshape(-1, 16, 16)  # heads x rows x cols of the person's query
        return float(final[:, :, 8:].sum() / final.sum())

    right_on, left_on = right_half_share((1.0, 0.0), True), right_half_share((-1.0, 0.0), True)
    plain = right_half_share((1.0, 0.0), False)
    assert right_on > plain + 0.05 and left_on < plain - 0.05


def test_gaze_field_training_step_is_finite_for_several_people_and_a_missing_box() -> None:
    """The heatmap and label losses reach the field weights and, through the field, the gaze vector."""
    with_field, _ = _tiny_pair()
    with_field.train()
    inputs = _field_inputs(with_field)
    out = with_field(inputs)
    assert out.heatmap.shape == (3, 64, 64) and out.label_embedding.shape == (3, 512)
    assert all(torch.isfinite(t).all() for t in (out.heatmap, out.label_embedding, out.gaze_vector))
    decoder = with_field.gaze_decoder
    vector = torch.autograd.grad(out.heatmap.square().sum(), out.gaze_vector, retain_graph=True)[0]
    assert torch.isfinite(vector).all() and vector.abs().sum() > 0
    (out.heatmap.square().sum() + out.label_embedding[:, 0].sum()).backward()
    scales = [decoder.field_heatmap, decoder.transformer.final_attn_gaze_to_image.field_scale,
              decoder.transformer.layers[0].cross_attn_image_to_gaze.field_scale]  # fmt: skip
    assert all(s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0 for s in scales)


def test_he_label_init_gives_people_different_label_embeddings() -> None:
    """With the default initialisation six random people leave the label MLP pointing the same way (InfoNCE then
    has nothing to work on); with ``he_label_init`` they do not."""
    from gazelab.models.semgaze_decoder import GazeDecoder

    closest = {}
    for he in (False, True):
        torch.manual_seed(0)
        decoder = GazeDecoder(64, 2, 4, 128, 2, 512, he_label_init=he).eval()
        with torch.no_grad():
            _, labels = decoder(torch.randn(1, 64, 16, 16), torch.randn(1, 6, 64))
        closest[he] = float((labels[0] @ labels[0].T).min())
    assert closest[False] > 0.95 and closest[True] < 0.8


def test_label_at_target_reads_the_tokens_under_the_heatmap() -> None:
    """Same weights: the label changes when the label MLP also reads the tokens under the person's heatmap, and
    the heatmap does not."""
    with_field, _ = _tiny_pair()
    inputs = _field_inputs(with_field)
    with torch.no_grad():
        alone = with_field(inputs)
        with_field.gaze_decoder.label_at_target = True
        reading = with_field(inputs)
    assert torch.equal(alone.heatmap, reading.heatmap)
    assert not torch.allclose(alone.label_embedding, reading.label_embedding, atol=1e-3)
    assert torch.isfinite(reading.label_embedding).all()
