"""The frozen-feature cache: exact features, both views, incremental and crash-safe builds, no pickle, keys that
change with the image and the backbone weights."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from test_train_support import make_synthetic
from torchvision.transforms.v2 import functional as F

from gazelab.data.dataset import PersonDataset, SampleConfig
from gazelab.data.formats import read_annotations
from gazelab.errors import GazelabError
from gazelab.io import load_image
from gazelab.models import create_model
from gazelab.train.cache import FeatureCache, cache_fingerprint
from gazelab.train.cached_data import CachedPersonDataset, cacheable

IMAGE_SIZE = 448


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    train, _ = make_synthetic(tmp_path_factory.mktemp("cache") / "synth", images=5)
    return read_annotations(train, check_images=True)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("gazelle_tiny").eval()


def new_cache(root, model) -> FeatureCache:
    return FeatureCache(root, cache_fingerprint(model, IMAGE_SIZE, "float32")).reload()


def encode(model, image: torch.Tensor) -> torch.Tensor:
    image = F.resize(image, [IMAGE_SIZE, IMAGE_SIZE], antialias=True)
    with torch.inference_mode():
        return model.encode(model.prepare_images(image[None]))[0]


def test_cached_features_are_the_backbone_features_of_each_view(frames, model, tmp_path):
    cache = new_cache(tmp_path, model)
    views = [(f, flip) for f in frames for flip in (False, True)]
    assert cache.build(model, views, batch_size=3) == len(views)
    frame = frames[1]
    image = F.pil_to_tensor(load_image(frame.image_path))
    for flip, view in ((False, image), (True, F.horizontal_flip(image))):
        torch.testing.assert_close(cache.features(frame, flip), encode(model, view), rtol=1e-5, atol=1e-5)
    assert cache.image_size(frame) == (frame.width, frame.height)


def test_cache_is_plain_files_and_reopens_without_recomputing(frames, model, tmp_path):
    cache = new_cache(tmp_path, model)
    views = [(f, False) for f in frames]
    cache.build(model, views[:2])
    files = sorted(p.name for p in cache.dir.rglob("*") if p.is_file())
    assert all(name.endswith((".npy", ".json")) for name in files) and not any(n.startswith(".") for n in files)
    for shard in cache.dir.glob("shards/*.npy"):
        np.load(shard, allow_pickle=False)  # a pickled array would raise
    meta = json.loads((cache.dir / "meta.json").read_text(encoding="utf-8"))
    assert meta["weights"] == cache.fingerprint["weights"]
    reopened = new_cache(tmp_path, model)
    assert len(reopened.missing(views)) == len(views) - 2
    assert reopened.build(model, views) == len(views) - 2  # only what no index lists
    assert reopened.build(model, views) == 0


def test_an_interrupted_shard_leaves_no_entry(frames, model, tmp_path, monkeypatch):
    cache = new_cache(tmp_path, model)
    monkeypatch.setattr(np, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        cache.build(model, [(frames[0], False)])
    monkeypatch.undo()
    assert not list(cache.dir.rglob("*.npy")) and not list(cache.dir.rglob(".*"))
    assert new_cache(tmp_path, model).missing([(frames[0], False)]) == [(frames[0], False)]


def test_keys_follow_the_image_and_the_backbone_weights(frames, model, tmp_path):
    cache = new_cache(tmp_path, model)
    cache.build(model, [(frames[0], False)])
    stat = frames[0].image_path.stat()
    os.utime(frames[0].image_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert cache.missing([(frames[0], False)])  # an edited image is computed again
    other = create_model("gazelle_tiny")
    assert new_cache(tmp_path, other).dir != cache.dir


def test_cached_dataset_matches_the_image_dataset_sample_for_sample(frames, model, tmp_path):
    augment = cacheable("gazelle")
    config = SampleConfig(image_size=IMAGE_SIZE, augment=augment, seed=3)
    plain = PersonDataset(frames, config)
    cache = new_cache(tmp_path, model)
    cache.build(model, [(f, flip) for f in frames for flip in (False, True)])
    cached = CachedPersonDataset(cache, frames, config)
    plain.set_epoch(1)
    cached.set_epoch(1)
    flipped = []
    for index in range(len(plain)):
        a, b = plain[index], cached[index]
        for key in ("heads", "gaze", "inout", "heatmaps", "person_index", "size"):
            assert torch.equal(a[key], b[key]), key
        torch.testing.assert_close(b["features"], encode(model, a["image"]), rtol=1e-5, atol=1e-5)
        flipped.append(not torch.equal(b["features"], cache.features(frames[plain.index[index][0]], False)))
    assert any(flipped) and not all(flipped)  # both views were used


def test_missing_view_is_a_clear_error(frames, model, tmp_path):
    with pytest.raises(GazelabError, match="not in the feature cache"):
        new_cache(tmp_path, model).features(frames[0], True)
