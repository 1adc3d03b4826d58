"""DINOv2 backbone: DINOv2's position-embedding resampling and the Hugging Face key map."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gazelab.models.backbones.dinov2 import DinoV2, DinoV2Config
from gazelab.models.official import load_dinov2

TINY = DinoV2Config(dim=32, depth=2, heads=2)


def grid_of(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    return pos_embed[:, 1:].reshape(1, grid, grid, -1).permute(0, 3, 1, 2)


def test_position_interpolation_is_dinov2s_recipe() -> None:
    torch.manual_seed(0)
    model = DinoV2(TINY)
    got = model.position_embedding(32, 32)
    source = grid_of(model.pos_embed, 37)
    scale = (32 + 0.1) / 37
    want = F.interpolate(source, scale_factor=(scale, scale), mode="bicubic", antialias=False)
    assert torch.equal(got[:, :1], model.pos_embed[:, :1])
    torch.testing.assert_close(grid_of(got, 32), want, atol=0, rtol=0)
    # The recipe matters: asking for the size directly samples elsewhere.
    plain = F.interpolate(source, size=(32, 32), mode="bicubic", antialias=False)
    assert (grid_of(got, 32) - plain).abs().max() > 1e-4


def test_register_models_resample_to_exact_size_with_antialias() -> None:
    torch.manual_seed(0)
    config = DinoV2Config(dim=32, depth=1, heads=2, registers=4, interpolate_offset=0.0, interpolate_antialias=True)
    model = DinoV2(config)
    want = F.interpolate(grid_of(model.pos_embed, 37), size=(16, 24), mode="bicubic", antialias=True)
    got = model.position_embedding(16, 24)[:, 1:].reshape(1, 16, 24, 32).permute(0, 3, 1, 2)
    torch.testing.assert_close(got, want, atol=0, rtol=0)


def test_native_resolution_uses_pos_embed_as_is() -> None:
    model = DinoV2(TINY)
    assert model.position_embedding(37, 37) is model.pos_embed
    assert model(torch.zeros(1, 3, 518, 518)).shape == (1, 32, 37, 37)
    assert model(torch.zeros(2, 3, 448, 336)).shape == (2, 32, 32, 24)


@pytest.mark.parametrize(("registers", "swiglu"), [(0, False), (0, True), (4, False)], ids=["mlp", "swiglu", "reg4"])
def test_hugging_face_weights_give_the_same_features(tmp_path, registers: int, swiglu: bool) -> None:
    """A tiny HF DINOv2 saved in the hub file layout loads through the key map and computes the same tokens."""
    import safetensors.torch
    import transformers  # the `semisup` extra, installed by `make test`

    kwargs = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=56, patch_size=14)
    torch.manual_seed(0)
    if registers:
        hf = transformers.Dinov2WithRegistersModel(
            transformers.Dinov2WithRegistersConfig(num_register_tokens=registers, **kwargs)
        )
    else:
        hf = transformers.Dinov2Model(transformers.Dinov2Config(use_swiglu_ffn=swiglu, **kwargs))
    with torch.no_grad():  # make the layer scales and tokens non-trivial
        for name, param in hf.named_parameters():
            if "lambda1" in name or "token" in name:
                param.uniform_(0.5, 1.5)
    hf.eval().save_pretrained(tmp_path)
    state = safetensors.torch.load_file(str(tmp_path / "model.safetensors"))

    ours = DinoV2(DinoV2Config(dim=32, depth=2, heads=2, swiglu=swiglu, registers=registers, pretrain_size=56)).eval()
    load_dinov2(ours, state, "hf")
    images = torch.randn(2, 3, 56, 56)
    with torch.inference_mode():
        want = hf(pixel_values=images).last_hidden_state[:, 1 + registers :]
        got = ours(images).flatten(2).transpose(1, 2)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
