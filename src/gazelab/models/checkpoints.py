"""Weight files: where they are cached, how they are downloaded and verified, and how they are loaded.

- Cache: ``$GAZELAB_HOME/weights`` (default ``~/.cache/gazelab/weights``, or ``$XDG_CACHE_HOME/gazelab``).
  A file is downloaded on first use; a user without internet can put it there by hand.
- Downloads are atomic (written to a temporary file next to the target, renamed when complete and verified),
  so an interrupted download never leaves a file that looks valid. Size and sha256 are checked when the zoo
  knows them.
- Loading never unpickles code: ``torch.load(..., weights_only=True)`` (or safetensors).
- :func:`load_state` is strict: a file that does not fit is refused with the lists of missing, unexpected and
  mis-shaped keys, instead of loading silently into a half-random model.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import pickle
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import torch
from torch import Tensor, nn

from gazelab.errors import GazelabError

CHUNK = 1 << 20
SHOWN_KEYS = 12
"""How many key names an error lists per category before summarising the rest."""


class CheckpointError(GazelabError):
    """A weight file that cannot be fetched, read, or loaded into the model it was given to."""


@dataclass(frozen=True)
class WeightFile:
    """A published weight file: where to download it and, when known, what it must look like."""

    url: str
    sha256: str | None = None
    """The file's sha256, or its first hex digits when only those are published (torchvision puts 8 of them in
    its file names: ``resnet50-0676ba61.pth``)."""
    size: int | None = None

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


@dataclass
class LoadReport:
    """Keys a load tolerated because the caller allowed them (e.g. a backbone loaded from another file)."""

    missing: list[str]


def weights_home() -> Path:
    """Root of gazelab's cache: ``$GAZELAB_HOME``, else ``$XDG_CACHE_HOME/gazelab``, else ``~/.cache/gazelab``."""
    if os.environ.get("GAZELAB_HOME"):
        return Path(os.environ["GAZELAB_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "gazelab"


def cached_path(weight: WeightFile) -> Path:
    """Where ``weight`` lives (or will live) in the cache."""
    return weights_home() / "weights" / weight.filename


def _open_url(url: str) -> IO[bytes]:
    """The network boundary (tests replace it to simulate being offline)."""
    return urllib.request.urlopen(url, timeout=60)


def fetch(weight: WeightFile, progress: bool = True) -> Path:
    """Path of ``weight`` in the cache, downloading it on first use."""
    dest = cached_path(weight)
    if dest.is_file():
        if weight.size is not None and dest.stat().st_size != weight.size:
            raise CheckpointError(
                f"{dest} has {dest.stat().st_size} bytes, expected {weight.size} (an incomplete or different file) "
                f"— delete it to download {weight.url} again"
            )
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _download(weight, dest, progress)
    except (OSError, http.client.HTTPException) as err:  # URLError, HTTPError and timeouts are OSErrors
        raise CheckpointError(
            f"could not download {weight.url} ({err}). Download it yourself and save it as {dest} "
            "(or set GAZELAB_HOME to the folder holding weights/)"
        ) from None
    return dest


def _download(weight: WeightFile, dest: Path, progress: bool) -> None:
    digest = hashlib.sha256()
    size = 0
    handle, temp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as out, _open_url(weight.url) as response:
            if progress:
                print(f"gazelab: downloading {weight.url} -> {dest}", file=sys.stderr)
            while chunk := response.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        _verify(weight, size, digest.hexdigest())
        os.replace(temp, dest)
    finally:
        temp.unlink(missing_ok=True)


def _verify(weight: WeightFile, size: int, sha256: str) -> None:
    if weight.size is not None and size != weight.size:
        raise CheckpointError(f"download of {weight.url} has {size} bytes, expected {weight.size}; not kept")
    if weight.sha256 is not None and not sha256.startswith(weight.sha256.lower()):
        raise CheckpointError(
            f"download of {weight.url} has sha256 {sha256}, expected {weight.sha256}; not kept "
            "(corrupted transfer or a changed file upstream)"
        )


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """A ``{name: tensor}`` state dict from a ``.pt``/``.pth`` (weights only) or ``.safetensors`` file.

    Training checkpoints that wrap the weights under ``state_dict`` or ``model`` are unwrapped.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weight file not found")
    if path.suffix == ".safetensors":
        try:
            from safetensors import SafetensorError
            from safetensors.torch import load_file
        except ImportError:
            raise CheckpointError(f"{path}: reading .safetensors needs `pip install safetensors`") from None
        try:
            return load_file(str(path))
        except SafetensorError as err:
            raise CheckpointError(f"{path}: not a readable .safetensors file ({err}) — download it again") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        raise CheckpointError(
            f"{path}: not a readable weights-only checkpoint ({str(err).splitlines()[0]}) — "
            "if it was downloaded, delete it and download again"
        ) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a mapping of parameter names to tensors")
    return dict(obj)


def _listing(kind: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOWN_KEYS])
    more = f" (and {len(keys) - SHOWN_KEYS} more)" if len(keys) > SHOWN_KEYS else ""
    return f"{len(keys)} {kind}: {shown}{more}"


def load_state(
    module: nn.Module,
    state_dict: Mapping[str, Tensor],
    source: str,
    allow_missing: Callable[[str], bool] | Iterable[str] = (),
) -> LoadReport:
    """Load ``state_dict`` into ``module`` strictly; refuse with every problem listed.

    ``allow_missing`` names keys (or a predicate over keys) that may be absent — they keep their current
    values and are returned in the report.
    """
    allowed = allow_missing if callable(allow_missing) else set(allow_missing).__contains__
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    tolerated = [k for k in missing if allowed(k)]
    problems = []
    if len(missing) > len(tolerated):
        problems.append(_listing("missing keys", [k for k in missing if not allowed(k)]))
    unexpected = [k for k in state_dict if k not in expected]
    if unexpected:
        problems.append(_listing("unexpected keys", unexpected))
    mismatched = [
        f"{k} {tuple(v.shape)} vs {tuple(expected[k].shape)}"
        for k, v in state_dict.items()
        if k in expected and v.shape != expected[k].shape
    ]
    if mismatched:
        problems.append(_listing("shape mismatches (file vs model)", mismatched))
    if problems:
        raise CheckpointError(f"{source} does not fit {type(module).__name__}: " + "; ".join(problems))
    module.load_state_dict(state_dict, strict=False)
    return LoadReport(missing=tolerated)
