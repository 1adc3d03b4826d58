"""Gaze-LLE model: shapes, the head-map rule, people independence, and the zoo's loading paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gazelab.errors import GazelabError
from gazelab.models import CheckpointError, create_model, list_models
from gazelab.models.gazelle import sincos_position_map
from gazelab.models.official import load_gazelle


@pytest.fixture(scope="module")
def pictures() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for h, w in [(300, 400), (480, 360)]]


@pytest.fixture(scope="module")
def tiny_inout() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("gazelle_tiny_inout").eval()


def test_forward_shapes_and_ranges(pictures, tiny_inout) -> None:
    heads = [[(0.1, 0.2, 0.3, 0.4), None, (0.5, 0.5, 0.7, 0.8)], [(0.2, 0.1, 0.4, 0.3)]]
    with torch.inference_mode():
        inputs = tiny_inout.prepare(pictures, heads)
        out = tiny_inout(inputs)
    assert inputs.images.shape == (2, 3, 448, 448)
    assert inputs.people.image_index.tolist() == [0, 0, 0, 1]
    assert out.heatmap.shape == (4, 64, 64)
    assert out.inout is not None and out.inout.shape == (4,)
    assert 0 <= float(out.heatmap.min()) and float(out.heatmap.max()) <= 1
    assert 0 <= float(out.inout.min()) and float(out.inout.max()) <= 1


def test_plain_model_has_no_inout(pictures) -> None:
    model = create_model("gazelle_tiny").eval()
    with torch.inference_mode():
        out = model(model.prepare(pictures[:1], [None]))
    assert out.heatmap.shape == (1, 64, 64) and out.inout is None


def test_preprocessing_is_normalise_then_resize(tiny_inout) -> None:
    """A flat grey picture stays flat: each channel becomes (v/255 - mean) / std at 448x448."""
    grey = Image.new("RGB", (50, 30), (128, 64, 200))
    images = tiny_inout.prepare_images([grey])
    expected = (torch.tensor([128, 64, 200]) / 255 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor(
        [0.229, 0.224, 0.225]
    )
    assert images.shape == (1, 3, 448, 448)
    torch.testing.assert_close(images[0, :, 100, 200], expected, atol=1e-5, rtol=0)


def test_head_map_rounds_half_to_even(tiny_inout) -> None:
    # x 0.203125*32 = 6.5 -> 6, y 0.015625*32 = 0.5 -> 0, 9.5 -> 10, 5.5 -> 6 (Python round, end exclusive).
    boxes = torch.tensor(
        [[0.203125, 0.015625, 0.296875, 0.171875], [0.5, 0.5, 0.51, 0.51], [float("nan")] * 4], dtype=torch.float64
    )
    people = tiny_inout.prepare_people(boxes, torch.zeros(3, dtype=torch.long), [])
    maps = people.extras["head_maps"]
    expected = torch.zeros(32, 32)
    expected[0:6, 6:10] = 1
    assert torch.equal(maps[0], expected)
    assert maps[1].sum() == 0, "a box rounding to zero size gives an empty map"
    assert maps[2].sum() == 0, "a person without a box gets an empty map"


def test_people_never_influence_each_other(pictures, tiny_inout) -> None:
    first = [(0.1, 0.2, 0.3, 0.4), (0.5, 0.5, 0.7, 0.8)]
    with torch.inference_mode():
        alone = tiny_inout(tiny_inout.prepare(pictures[:1], [first]))
        crowded = tiny_inout(tiny_inout.prepare(pictures, [first + [(0.6, 0.0, 0.9, 0.2), None], [None]]))
    torch.testing.assert_close(crowded.heatmap[:2], alone.heatmap, atol=1e-6, rtol=0)
    torch.testing.assert_close(crowded.inout[:2], alone.inout, atol=1e-6, rtol=0)
    assert not torch.allclose(alone.heatmap[0], alone.heatmap[1]), "the head box must change the answer"


def test_folded_heatmap_head_equals_the_two_convolutions() -> None:
    """The decoder applies ``heatmap_head`` as one folded matmul: same maps as running its two layers, and the
    gradient still reaches both layers' weights (training updates the checkpoint's parameters)."""
    torch.manual_seed(0)
    model = create_model("gazelle_tiny")
    for parameter in model.heatmap_head.parameters():
        torch.nn.init.normal_(parameter, std=0.1)
    tokens = torch.randn(3, 32 * 32, model.cfg.dim)
    unfolded = model.heatmap_head(tokens.transpose(1, 2).reshape(3, -1, 32, 32)).squeeze(1)
    folded = model.heatmap_from_tokens(tokens, 32, 32)
    assert folded.shape == (3, 64, 64)
    torch.testing.assert_close(folded, unfolded, atol=1e-6, rtol=0)
    folded.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.heatmap_head.parameters())


def test_optional_gaze_vector_and_field(pictures) -> None:
    """``gaze_vector`` adds a unit 2-D direction per person, trainable with the ``angular`` loss (its gradient
    reaches the backbone); ``gaze_field`` feeds the field cast along it to the decoder, so the heatmap loss trains
    the direction too. The published architecture has neither."""
    from gazelab.models.gazelle import GazeLLE, GazeLLEConfig
    from gazelab.train.losses import get_loss

    torch.manual_seed(0)
    config = GazeLLEConfig(backbone="dinov2_tiny", dim=32, heads=2, layers=1, freeze_backbone=False,
                           gaze_vector=True, gaze_field=True)  # fmt: skip
    model = GazeLLE(config)
    heads = [[(0.1, 0.2, 0.3, 0.4), (0.6, 0.5, 0.8, 0.8)], [(0.2, 0.1, 0.4, 0.3)]]
    out = model(model.prepare(pictures, heads))
    assert out.gaze_vector is not None and out.gaze_vector.shape == (3, 2)
    torch.testing.assert_close(out.gaze_vector.norm(dim=1), torch.ones(3))
    batch = {"heads": torch.tensor([h for image in heads for h in image]), "inout": torch.ones(3),
             "gaze": torch.tensor([[[0.9, 0.3]], [[0.1, 0.9]], [[0.3, 0.9]]])}  # fmt: skip
    get_loss("angular")(out, batch).backward()
    assert model.backbone.patch_embed.proj.weight.grad.abs().sum() > 0
    model.zero_grad()
    model(model.prepare(pictures, heads)).heatmap.sum().backward()
    assert model.gaze_vector_head.mlp[0].weight.grad.abs().sum() > 0, "the heatmap trains the direction"
    assert create_model("gazelle_tiny")(create_model("gazelle_tiny").prepare(pictures, heads)).gaze_vector is None
    with pytest.raises(ValueError, match="gaze_field needs gaze_vector"):
        GazeLLE(GazeLLEConfig(backbone="dinov2_tiny", dim=32, heads=2, layers=1, gaze_field=True))


def test_gaze_field_points_along_the_direction() -> None:
    from gazelab.models.gaze_field import gaze_field

    boxes = torch.tensor([[0.4, 0.4, 0.6, 0.6], [float("nan")] * 4])
    right = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    field = gaze_field(boxes, right, 8, 8, (1.0, 4.0))
    assert field.shape == (2, 2, 8, 8)
    assert field[0, 0, 4, 7] > 0.95 and field[0, 0, 4, 0] == 0, "ahead of the head: ~1; behind: 0"
    assert field[0, 1, 1, 7] < field[0, 0, 1, 7], "a larger gamma is a narrower cone"
    assert field[1, 0, 7, 4] > 0.95 and field[1, 0, 0, 4] == 0, "no box: cast from the image centre, downwards"


def test_head_crops_cut_the_box_and_feed_the_direction(pictures) -> None:
    from gazelab.models.gaze_field import head_crops
    from gazelab.models.gazelle import GazeLLE, GazeLLEConfig

    images = torch.zeros(2, 3, 40, 80)
    images[1, 0, 10:20, 40:60] = 1.0  # a red patch on the second picture
    boxes = torch.tensor([[0.5, 0.25, 0.75, 0.5], [float("nan")] * 4])
    crops = head_crops(images, boxes, torch.tensor([1, 1]), 8)
    assert crops.shape == (2, 3, 8, 8)
    torch.testing.assert_close(crops[0, 0, 1:-1, 1:-1], torch.ones(6, 6))  # inside: the red patch (edges blend)
    assert crops[0, 1:].abs().max() == 0
    assert 0 < float(crops[1, 0].mean()) < 0.2, "no box: the whole picture"
    config = GazeLLEConfig(backbone="dinov2_tiny", dim=32, heads=2, layers=1, gaze_vector=True, head_crop=16)
    model = GazeLLE(config)
    inputs = model.prepare(pictures, [[(0.1, 0.2, 0.3, 0.4)], [(0.2, 0.1, 0.4, 0.3)]])
    assert inputs.people.extras["head_crops"].shape == (2, 3, 16, 16)
    assert model(inputs).gaze_vector.shape == (2, 2)


def test_sincos_position_map_layout() -> None:
    pe = sincos_position_map(256, 32, 32)
    x, y, c = 5.0, 7.0, 3
    w = np.exp(-(2 * c) * np.log(10000) / 128)
    assert pe.shape == (256, 32, 32)
    assert np.isclose(pe[2 * c, 7, 5], np.sin(x * w), atol=1e-6)
    assert np.isclose(pe[2 * c + 1, 7, 5], np.cos(x * w), atol=1e-6)
    assert np.isclose(pe[128 + 2 * c, 7, 5], np.sin(y * w), atol=1e-6)
    assert np.isclose(pe[129 + 2 * c, 7, 5], np.cos(y * w), atol=1e-6)


def test_released_parameter_counts() -> None:
    """Decoder sizes published with Gaze-LLE (pos_embed excluded); built on the meta device, no memory."""
    with torch.device("meta"):
        counts = {
            name: sum(p.numel() for k, p in create_model(name).named_parameters() if not k.startswith("backbone."))
            for name in ["gazelle_dinov2_vitb14", "gazelle_dinov2_vitl14", "gazelle_dinov2_vitb14_inout"]
        }
    assert counts == {
        "gazelle_dinov2_vitb14": 2_826_752,
        "gazelle_dinov2_vitl14": 2_892_288,
        "gazelle_dinov2_vitb14_inout": 2_826_752 + 33_281,
    }


def test_backbone_is_frozen_decoder_trains() -> None:
    model = create_model("gazelle_tiny")
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for n, p in model.named_parameters() if not n.startswith("backbone."))


def decoder_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The released decoder-file layout: no backbone keys, with the pos_embed buffer."""
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("backbone.")}
    return {**state, "pos_embed": model.pos_embed.clone()}


def test_strict_loading_lists_missing_and_unexpected_keys() -> None:
    model = create_model("gazelle_tiny")
    state = decoder_state(model)
    del state["transformer.1.attn.qkv.weight"]
    state["transformer.9.attn.qkv.weight"] = torch.zeros(1)
    state["linear.bias"] = torch.zeros(3)
    with pytest.raises(CheckpointError) as err:
        load_gazelle(create_model("gazelle_tiny"), state, "my.pt")
    message = str(err.value)
    assert "my.pt" in message
    assert "1 missing keys: transformer.1.attn.qkv.weight" in message
    assert "1 unexpected keys: transformer.9.attn.qkv.weight" in message
    assert "linear.bias (3,) vs (32,)" in message


def test_gazefollow_decoder_into_inout_model_only_when_asked() -> None:
    torch.manual_seed(1)
    state = decoder_state(create_model("gazelle_tiny"))
    with pytest.raises(CheckpointError, match="inout_token.weight"):
        load_gazelle(create_model("gazelle_tiny_inout"), state, "gazefollow.pt")
    model = create_model("gazelle_tiny_inout")
    report = load_gazelle(model, state, "gazefollow.pt", allow_missing_inout=True)
    assert {k for k in report.missing if not k.startswith("backbone.")} == {
        "inout_token.weight",
        "inout_head.0.weight",
        "inout_head.0.bias",
        "inout_head.3.weight",
        "inout_head.3.bias",
    }
    torch.testing.assert_close(model.linear.weight, state["linear.weight"])


def test_pretrained_path_round_trip(tmp_path, pictures) -> None:
    """Our own full file, and a released-style decoder file plus a DINOv2 file, give the same model."""
    torch.manual_seed(2)
    source = create_model("gazelle_tiny_inout").eval()
    torch.save(source.state_dict(), tmp_path / "full.pt")
    torch.save(decoder_state(source), tmp_path / "decoder.pt")
    torch.save(source.backbone.state_dict(), tmp_path / "dinov2.pth")

    full = create_model("gazelle_tiny_inout", pretrained=tmp_path / "full.pt").eval()
    split = create_model(
        "gazelle_tiny_inout", pretrained=str(tmp_path / "decoder.pt"), backbone_weights=tmp_path / "dinov2.pth"
    ).eval()
    with torch.inference_mode():
        inputs = source.prepare(pictures[:1], [[(0.2, 0.2, 0.4, 0.4)]])
        want = source(inputs)
        for model in (full, split):
            got = model(inputs)
            assert torch.equal(got.heatmap, want.heatmap) and torch.equal(got.inout, want.inout)


def test_decoder_file_without_backbone_weights_needs_them() -> None:
    with pytest.raises(GazelabError, match="backbone dinov2_tiny has no published weights"):
        create_model("gazelle_tiny", backbone_weights=True)


def test_zoo_lists_released_models() -> None:
    assert list_models(pretrained=True) == [
        "gazelle_dinov2_vitb14",
        "gazelle_dinov2_vitl14",
        "gazelle_dinov2_vitb14_inout",
        "gazelle_dinov2_vitl14_inout",
    ]
    assert {"gazelle_tiny", "gazelle_tiny_inout", "gazelle_dinov2_vits14"} <= set(list_models())
    with pytest.raises(GazelabError, match="unknown model 'gazelle_huge'"):
        create_model("gazelle_huge")
