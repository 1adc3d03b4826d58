"""Weight files: cache location, verified atomic downloads, offline errors, weights-only loading."""

from __future__ import annotations

import hashlib
import urllib.error
from pathlib import Path

import pytest
import torch

from gazelab.models import checkpoints, create_model
from gazelab.models.checkpoints import CheckpointError, WeightFile, cached_path, fetch, load_state_dict_file


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("GAZELAB_HOME", str(home))
    return home / "weights"


def offline(url: str):
    raise urllib.error.URLError("no network")


def published(tmp_path: Path, payload: bytes = b"weights" * 1000) -> tuple[WeightFile, bytes]:
    source = tmp_path / "served" / "model.pt"
    source.parent.mkdir()
    source.write_bytes(payload)
    return WeightFile(source.as_uri(), sha256=hashlib.sha256(payload).hexdigest(), size=len(payload)), payload


def test_cache_follows_gazelab_home(cache) -> None:
    assert checkpoints.weights_home() == cache.parent
    assert cached_path(WeightFile("https://example.org/a/b/file.pt")) == cache / "file.pt"


def test_default_cache_is_user_cache_dir(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("GAZELAB_HOME")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert checkpoints.weights_home() == tmp_path / ".cache" / "gazelab"


def test_download_verifies_and_is_reused(tmp_path, cache, monkeypatch) -> None:
    weight, payload = published(tmp_path)
    path = fetch(weight, progress=False)
    assert path == cache / "model.pt" and path.read_bytes() == payload
    assert [p.name for p in cache.iterdir()] == ["model.pt"], "no temporary files left behind"
    monkeypatch.setattr(checkpoints, "_open_url", offline)
    assert fetch(weight, progress=False) == path, "a cached file is used without the network"


def test_checksum_mismatch_is_refused_and_not_kept(tmp_path, cache) -> None:
    weight, _ = published(tmp_path)
    wrong = WeightFile(weight.url, sha256="0" * 64)
    with pytest.raises(CheckpointError, match="sha256 .* expected 0{64}; not kept"):
        fetch(wrong, progress=False)
    assert list(cache.iterdir()) == []


def test_a_published_sha256_prefix_is_checked(tmp_path, cache) -> None:
    weight, _ = published(tmp_path)
    prefix = weight.sha256[:8]
    wrong = "0" * 8 if prefix != "0" * 8 else "1" * 8
    with pytest.raises(CheckpointError, match=f"expected {wrong}; not kept"):
        fetch(WeightFile(weight.url, sha256=wrong), progress=False)
    assert fetch(WeightFile(weight.url, sha256=prefix), progress=False).is_file()


def test_size_mismatch_is_refused(tmp_path, cache) -> None:
    weight, payload = published(tmp_path)
    with pytest.raises(CheckpointError, match=f"has {len(payload)} bytes, expected 5"):
        fetch(WeightFile(weight.url, size=5), progress=False)
    assert list(cache.iterdir()) == []


def test_truncated_cached_file_is_reported(tmp_path, cache) -> None:
    weight, payload = published(tmp_path)
    cache.mkdir(parents=True)
    (cache / "model.pt").write_bytes(payload[:10])
    with pytest.raises(CheckpointError, match="delete it to download"):
        fetch(weight, progress=False)


def test_offline_error_names_url_and_destination(monkeypatch, cache) -> None:
    monkeypatch.setattr(checkpoints, "_open_url", offline)
    url = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/dinov2_vits14_pretrain.pth"
    with pytest.raises(CheckpointError) as err:
        create_model("gazelle_dinov2_vits14", backbone_weights=True, progress=False)
    message = str(err.value)
    assert url in message
    assert str(cache / "dinov2_vits14_pretrain.pth") in message
    assert "no network" in message
    assert not any(cache.iterdir())


def test_released_decoder_download_url(monkeypatch) -> None:
    monkeypatch.setattr(checkpoints, "_open_url", offline)
    with pytest.raises(CheckpointError, match="releases/download/v1.0.0/gazelle_dinov2_vits14.pt") as err:
        fetch(WeightFile("https://github.com/fkryan/gazelle/releases/download/v1.0.0/gazelle_dinov2_vits14.pt"))
    assert "save it as" in str(err.value)


class Payload:
    """Not a tensor: unpickling it would mean running arbitrary code from a file."""


def test_loading_is_weights_only(tmp_path) -> None:
    torch.save({"weight": torch.ones(2)}, tmp_path / "good.pt")
    assert torch.equal(load_state_dict_file(tmp_path / "good.pt")["weight"], torch.ones(2))
    torch.save({"weight": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="not a readable weights-only checkpoint"):
        load_state_dict_file(tmp_path / "evil.pt")


def test_training_checkpoint_is_unwrapped(tmp_path) -> None:
    torch.save({"epoch": 3, "state_dict": {"a": torch.zeros(1)}}, tmp_path / "ckpt.pt")
    assert list(load_state_dict_file(tmp_path / "ckpt.pt")) == ["a"]


def test_missing_and_corrupt_files_are_clear(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="weight file not found"):
        load_state_dict_file(tmp_path / "nope.pt")
    (tmp_path / "broken.pt").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="broken.pt: not a readable"):
        load_state_dict_file(tmp_path / "broken.pt")
