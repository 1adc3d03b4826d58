"""VAT and PDP behind the common interface: preprocessing, output semantics, state carrying, loading."""

from __future__ import annotations

import pytest
import torch

from gazelab.data.targets import head_channel
from gazelab.errors import GazelabError
from gazelab.models import CheckpointError, create_model, get_model_spec
from gazelab.models.official import load_chong
from gazelab.models.pdp import patch_probabilities

CHONG_MODELS = ["vat_spatial", "vat_temporal", "pdp_spatial", "pdp_spatial_depth", "pdp_temporal_depth"]


@pytest.fixture(scope="module")
def vat() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("vat_spatial").eval()


def test_zoo_lists_the_architectures_without_invented_downloads() -> None:
    for name in CHONG_MODELS:
        spec = get_model_spec(name)
        assert spec.weights is None and spec.backbone_weights is None


def test_prepare_builds_scene_head_channel_and_head_crop(vat: torch.nn.Module) -> None:
    picture = torch.zeros(3, 40, 80, dtype=torch.uint8)
    picture[:, 10:20, 40:60] = 255  # the head box below, in pixels
    box = (0.5, 0.25, 0.75, 0.5)
    inputs = vat.prepare([picture, picture], [[box], None])

    assert inputs.images.shape == (2, 3, 224, 224)
    channel = inputs.people.extras["head_channel"]
    assert torch.equal(channel[0, 0], head_channel(torch.tensor(box)))
    assert not channel[1].any()  # no box, no head channel
    faces = inputs.people.extras["faces"]
    white = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(faces[0], white[:, None, None].expand(3, 224, 224), atol=1e-5)  # only the white head
    assert faces[1].min() < 0 < faces[1].max()  # no box: the whole picture


def test_vat_outputs_are_clamped_heatmaps_and_sigmoid_inout(vat: torch.nn.Module) -> None:
    picture = torch.randint(0, 256, (3, 48, 64), dtype=torch.uint8)
    inputs = vat.prepare([picture], [[(0.1, 0.1, 0.4, 0.5), (0.5, 0.2, 0.7, 0.4)]])
    with torch.inference_mode():
        out = vat(inputs)
        extras = inputs.people.extras
        raw = vat.run(inputs.images[[0, 0]], extras["head_channel"], extras["faces"])
    assert out.heatmap.shape == (2, 64, 64)
    assert torch.equal(out.heatmap, raw.heatmap[:, 0].clamp(0, 1))
    assert torch.allclose(out.inout, torch.sigmoid(raw.inout_logit[:, 0]))
    assert torch.allclose(raw.attention.flatten(1).sum(1), torch.ones(2))


def test_vat_temporal_carries_state_across_chunks() -> None:
    torch.manual_seed(0)
    model = create_model("vat_temporal").eval()
    frames = torch.randn(4, 3, 224, 224)
    heads = head_channel(torch.tensor([0.3, 0.2, 0.5, 0.4]).expand(4, 4))[:, None]
    faces = torch.randn(4, 3, 224, 224)
    with torch.inference_mode():
        whole = model.run_packed(frames, heads, faces, [1, 1, 1, 1])
        first = model.run_packed(frames[:2], heads[:2], faces[:2], [1, 1])
        second = model.run_packed(frames[2:], heads[2:], faces[2:], [1, 1], state=first.state)
        fresh = model.run_packed(frames[2:], heads[2:], faces[2:], [1, 1])
    assert torch.allclose(torch.cat([first.heatmap, second.heatmap]), whole.heatmap, atol=1e-5)
    for carried, reference, restarted in zip(second.state, whole.state, fresh.state, strict=True):
        assert torch.allclose(carried, reference, atol=1e-5)
        assert not torch.allclose(carried, restarted, atol=1e-5)  # the carried history matters


def test_pdp_inout_is_one_minus_the_outside_share() -> None:
    torch.manual_seed(0)
    model = create_model("pdp_spatial").eval()
    inputs = model.prepare([torch.randint(0, 256, (3, 30, 30), dtype=torch.uint8)], [[(0.2, 0.2, 0.5, 0.5)]])
    with torch.inference_mode():
        out = model(inputs)
        extras = inputs.people.extras
        raw = model.run(inputs.images, extras["head_channel"], extras["faces"])
    probabilities = patch_probabilities(raw.patch_logits)
    assert torch.allclose(probabilities.sum(-1), torch.ones(1))
    assert torch.allclose(out.inout, 1 - probabilities[:, -1])
    assert out.heatmap.shape == (1, 64, 64) and 0 <= out.heatmap.min() and out.heatmap.max() <= 1


def test_pdp_depth_models_ask_for_depth() -> None:
    model = create_model("pdp_spatial_depth").eval()
    inputs = model.prepare([torch.zeros(3, 8, 8, dtype=torch.uint8)], [None])
    with pytest.raises(GazelabError, match="depth"):
        model(inputs)


def test_temporal_pdp_needs_whole_windows() -> None:
    model = create_model("pdp_temporal_depth").eval()
    inputs = model.prepare([torch.zeros(3, 8, 8, dtype=torch.uint8)], [None])
    inputs.people.extras["depth"] = torch.zeros(1, 1, 224, 224)
    with pytest.raises(GazelabError, match="windows of 5"):
        model(inputs)


def test_importer_is_strict_and_can_leave_the_inout_branch() -> None:
    spatial, temporal = create_model("vat_spatial"), create_model("vat_temporal")
    with pytest.raises(CheckpointError, match="bn_ds"):
        load_chong(temporal, spatial.state_dict(), "spatial file")  # a GazeFollow file is not a VAT file
    without_inout = {k: v for k, v in spatial.state_dict().items() if "inout" not in k}
    with pytest.raises(CheckpointError, match="14 missing keys: compress_conv1_inout"):
        load_chong(spatial, without_inout, "heatmap-only file")
    report = load_chong(spatial, without_inout, "heatmap-only file", allow_missing_inout=True)
    assert report.missing and all("inout" in key for key in report.missing)
