"""VAT, VAT-GC and PDP behind the common interface: preprocessing, output semantics, state carrying, loading,
ImageNet trunks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import ResNet50_Weights, resnet50

from gazelab.data.targets import head_channel
from gazelab.errors import GazelabError
from gazelab.models import CheckpointError, create_model, get_model_spec
from gazelab.models.convlstm import packed_order
from gazelab.models.official import chong_state_dict, load_chong, load_imagenet_trunks
from gazelab.models.pdp import load_depth, patch_probabilities
from gazelab.models.registry import RESNET50_IMAGENET
from gazelab.models.vat import expand_heads

CHONG_MODELS = ["vat_spatial", "vat_temporal", "vat_gc", "pdp_spatial", "pdp_spatial_depth", "pdp_temporal_depth"]


@pytest.fixture(scope="module")
def vat() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("vat_spatial_tiny").eval()


def test_zoo_lists_no_invented_model_downloads_and_torchvisions_imagenet_trunk() -> None:
    assert RESNET50_IMAGENET.url == ResNet50_Weights.IMAGENET1K_V1.url
    for name in CHONG_MODELS:
        spec = get_model_spec(name)
        assert spec.weights is None and spec.backbone_weights == RESNET50_IMAGENET


def test_head_boxes_widen_by_ten_percent_as_the_reference_loaders() -> None:
    widened = expand_heads(torch.tensor([[0.2, 0.4, 0.4, 0.5]], dtype=torch.float64))
    # x1 -= 0.1 * 0.2; y1 -= 0.1 * 0.1; then x2 += 0.1 * 0.22; y2 += 0.1 * 0.11 (the widened sizes)
    assert torch.allclose(widened, torch.tensor([[0.18, 0.39, 0.422, 0.511]], dtype=torch.float64))


def test_prepare_builds_scene_head_channel_and_widened_head_crop(vat: torch.nn.Module) -> None:
    picture = torch.zeros(3, 40, 100, dtype=torch.uint8)
    picture[:, 10:20, 50:70] = 255  # the head box below, in pixels; the 10% margin around it is black
    box = (0.5, 0.25, 0.7, 0.5)
    corner = (0.0, 0.0, 0.2, 0.5)  # widened past the picture's edge: padded with black
    inputs = vat.prepare([picture, picture], [[box, corner], None])

    assert inputs.images.shape == (2, 3, 224, 224)
    channel = inputs.people.extras["head_channel"]
    assert torch.equal(channel[0, 0], head_channel(expand_heads(torch.tensor(box, dtype=torch.float64))))
    assert channel[0, 0].sum() > head_channel(torch.tensor(box)).sum()
    assert not channel[2].any()  # no box, no head channel
    faces = inputs.people.extras["faces"]
    white = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    black = -torch.tensor([0.485, 0.456, 0.406]) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(faces[0, :, 112, 112], white, atol=1e-5)  # the head in the middle
    assert torch.allclose(faces[0, :, 2, 2], black, atol=1e-5)  # the margin around it
    assert torch.allclose(faces[1, :, 2, 2], black, atol=1e-5)  # padding outside the picture
    assert faces[2].min() < 0 < faces[2].max()  # no box: the whole picture


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


def test_vat_gc_attends_with_the_pooled_gradcam() -> None:
    torch.manual_seed(0)
    model = create_model("vat_gc_tiny").eval()
    assert model.attn.in_features == 784 + 256 + 128  # head, Grad-CAM, face vector (1024 at full width)
    assert create_model("vat_gc").attn.in_features == 2064
    inputs = model.prepare([torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)], [[(0.2, 0.2, 0.5, 0.5)]])
    with pytest.raises(GazelabError, match="Grad-CAM"):
        model(inputs)
    left, right = torch.zeros(1, 64, 64), torch.zeros(1, 64, 64)
    left[:, :, :8], right[:, :, -8:] = 1.0, 1.0
    extras = inputs.people.extras
    with torch.inference_mode():
        extras["gradcam"] = left
        through_decode = model(inputs).raw_heatmap
        first = model.run(inputs.images, extras["head_channel"], extras["faces"], left[:, None])
        second = model.run(inputs.images, extras["head_channel"], extras["faces"], right[:, None])
    assert torch.equal(through_decode, first.heatmap[:, 0])
    assert not torch.allclose(first.attention, second.attention)  # the prior steers the attention


def test_packed_order_sorts_clips_longest_first_time_major() -> None:
    clip = torch.tensor([0, 0, 1, 1, 1, 2])
    step = torch.tensor([1, 0, 0, 2, 1, 0])
    order, batch_sizes = packed_order(clip, step)
    assert batch_sizes == [3, 2, 1]
    assert order.tolist() == [2, 1, 5, 4, 0, 3]  # t=0: clips 1, 0, 2; t=1: clips 1, 0; t=2: clip 1
    with pytest.raises(GazelabError, match="frame_step"):
        packed_order(clip, torch.tensor([0, 0, 0, 1, 2, 0]))


def test_vat_temporal_sequence_equals_chunked_inference_with_carried_state() -> None:
    torch.manual_seed(0)
    model = create_model("vat_temporal_tiny").eval()
    frames = [torch.randint(0, 256, (3, 48, 64), dtype=torch.uint8) for _ in range(5)]
    inputs = model.prepare(frames, [[(0.1 + 0.05 * t, 0.2, 0.3 + 0.05 * t, 0.5)] for t in range(5)])
    extras = inputs.people.extras
    extras["clip_index"], extras["frame_step"] = torch.zeros(5, dtype=torch.long), torch.arange(5)
    with torch.inference_mode():
        whole = model(inputs)  # the whole clip as one sequence from a zero state
        chunked = model.run_chunked(inputs.images, extras["head_channel"], extras["faces"], chunk=3)
        restarted = model.run_chunked(inputs.images[3:], extras["head_channel"][3:], extras["faces"][3:], chunk=3)
    assert torch.allclose(whole.raw_heatmap, chunked.heatmap[:, 0], atol=1e-5)
    assert torch.allclose(whole.inout_logit, chunked.inout_logit[:, 0], atol=1e-5)
    assert not torch.allclose(whole.raw_heatmap[3:], restarted.heatmap[:, 0], atol=1e-5)  # the state matters


def test_vat_temporal_carries_state_across_chunks() -> None:
    torch.manual_seed(0)
    model = create_model("vat_temporal_tiny").eval()
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
    model = create_model("pdp_spatial_tiny").eval()
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
    model = create_model("pdp_spatial_depth_tiny").eval()
    inputs = model.prepare([torch.zeros(3, 8, 8, dtype=torch.uint8)], [None])
    with pytest.raises(GazelabError, match="depth"):
        model(inputs)


def test_temporal_pdp_cuts_clips_into_windows_and_answers_stills() -> None:
    torch.manual_seed(0)
    model = create_model("pdp_temporal_depth_tiny").eval()
    frames = [torch.randint(0, 256, (3, 24, 32), dtype=torch.uint8) for _ in range(6)]
    inputs = model.prepare(frames, [[(0.2, 0.2, 0.4, 0.5)]] * 6)
    extras = inputs.people.extras
    extras["depth"] = torch.rand(6, 1, 224, 224)
    extras["clip_index"] = torch.tensor([0, 0, 0, 0, 0, 0])
    extras["frame_step"] = torch.tensor([5, 0, 1, 2, 3, 4])  # any order: the frame steps decide
    with torch.inference_mode():
        out = model(inputs)
        stacked = [torch.cat([x[1:], x[:1].expand(5, *x.shape[1:])]).unflatten(0, (2, 5))
                   for x in (inputs.images, extras["head_channel"], extras["faces"], extras["depth"])]  # fmt: skip
        windows = model.run_windows(*stacked)  # frames 0-4, then frame 5 repeated
        single = model.prepare(frames[:1], [[(0.2, 0.2, 0.4, 0.5)]])
        single.people.extras["depth"] = extras["depth"][:1]
        alone = model(single)
    assert torch.allclose(out.patch_logits[1:], windows.patch_logits[:5], atol=1e-5)
    assert torch.allclose(out.patch_logits[0], windows.patch_logits[5], atol=1e-5)  # last window padded by repeats
    assert torch.allclose(alone.patch_logits[0], windows.patch_logits[5], atol=1e-5)  # no clip: a still window


def test_depth_files_load_as_model_input(tmp_path) -> None:
    values = np.zeros((20, 40), dtype=np.uint16)
    values[:, 20:] = 65535
    Image.fromarray(values).save(tmp_path / "depth.png")
    depth = load_depth(tmp_path / "depth.png")
    assert depth.shape == (1, 224, 224) and float(depth[0, 5, 5]) == 0.0 and float(depth[0, 5, 218]) == 1.0
    with pytest.raises(GazelabError, match="depth image"):
        load_depth(tmp_path / "missing.png")


def test_imagenet_resnet50_initialises_both_trunks() -> None:
    torch.manual_seed(0)
    reference = resnet50().state_dict()  # random weights in torchvision's layout: nothing is downloaded
    model = create_model("pdp_spatial_depth")
    before = model.state_dict()
    report = load_imagenet_trunks(model, reference, "resnet50.pth")
    after = model.state_dict()
    for part in ("scene", "face"):
        assert torch.equal(after[f"layer3_{part}.4.conv2.weight"], reference["layer3.4.conv2.weight"])
        assert torch.equal(after[f"bn1_{part}.running_var"], reference["bn1.running_var"])
        assert torch.equal(after[f"layer5_{part}.0.conv1.weight"], before[f"layer5_{part}.0.conv1.weight"])
    assert torch.equal(after["conv1_face.weight"], reference["conv1.weight"])
    assert torch.equal(after["conv1_scene.weight"][:, :3], reference["conv1.weight"])
    assert not after["conv1_scene.weight"][:, 3:].any()  # depth and head channels start at zero
    assert torch.equal(after["attn.weight"], before["attn.weight"])
    assert all(k.startswith(("layer5_", "attn", "compress", "deconv", "conv4", "outside", "patch", "qkv", "inout"))
               for k in report.missing)  # fmt: skip
    with pytest.raises(CheckpointError, match="unexpected key"):
        load_imagenet_trunks(model, {**reference, "extra.weight": torch.zeros(1)}, "resnet50.pth")
    with pytest.raises(CheckpointError, match="shape"):
        load_imagenet_trunks(create_model("vat_spatial_tiny"), reference, "resnet50.pth")


def test_imagenet_trunks_offline_name_the_url_and_the_cache(monkeypatch, tmp_path) -> None:
    from gazelab.models import checkpoints

    def offline(url):
        raise OSError("network is unreachable")

    monkeypatch.setenv("GAZELAB_HOME", str(tmp_path))
    monkeypatch.setattr(checkpoints, "_open_url", offline)
    with pytest.raises(CheckpointError, match="resnet50-0676ba61.pth.*save it as .*weights"):
        create_model("vat_spatial", backbone_weights=True)


def test_video_models_start_from_image_model_files() -> None:
    spatial = {k: v for k, v in create_model("vat_spatial_tiny").state_dict().items() if "inout" not in k}
    with pytest.raises(CheckpointError, match="missing keys"):
        load_chong(create_model("vat_temporal_tiny"), spatial, "image model file")
    report = load_chong(create_model("vat_temporal_tiny"), spatial, "image model file", allow_missing_inout=True)
    assert any(k.startswith("convlstm_scene.") for k in report.missing) and any(".bn_ds." in k for k in report.missing)
    depth = create_model("pdp_spatial_depth_tiny").state_dict()
    report = load_chong(create_model("pdp_temporal_depth_tiny"), depth, "image model file", allow_missing_inout=True)
    assert report.missing and all(k.startswith(("temporal_", "fc_inout.")) for k in report.missing)


def test_exported_weights_load_back_strictly() -> None:
    torch.manual_seed(0)
    trained = create_model("pdp_spatial_tiny")
    state = chong_state_dict(trained)
    assert state.keys() == trained.state_dict().keys()
    fresh = create_model("pdp_spatial_tiny")
    assert load_chong(fresh, state, "exported").missing == []
    assert all(torch.equal(value, fresh.state_dict()[key]) for key, value in state.items())


def test_importer_is_strict_and_can_leave_the_inout_branch() -> None:
    spatial, temporal = create_model("vat_spatial"), create_model("vat_temporal")
    with pytest.raises(CheckpointError, match="bn_ds"):
        load_chong(temporal, spatial.state_dict(), "spatial file")  # a GazeFollow file is not a VAT file
    without_inout = {k: v for k, v in spatial.state_dict().items() if "inout" not in k}
    with pytest.raises(CheckpointError, match="14 missing keys: compress_conv1_inout"):
        load_chong(spatial, without_inout, "heatmap-only file")
    report = load_chong(spatial, without_inout, "heatmap-only file", allow_missing_inout=True)
    assert report.missing and all("inout" in key for key in report.missing)
