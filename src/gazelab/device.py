"""Where to compute: one reading of a ``--device`` value for the commands and pipelines that take one.

``auto`` is the first CUDA GPU when there is one, else the CPU (MPS is never picked by itself: several
operators the models use fall back to the CPU there; ask for ``mps`` by name). Any other value is a torch
device (``cpu``, ``cuda``, ``cuda:1``, ``mps``), checked by allocating on it, so a machine without the device
fails at once with the option's name instead of minutes later inside a training loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gazelab.errors import GazelabError

if TYPE_CHECKING:  # torch is imported on first use, so modules that name this one stay light to import
    import torch

AUTO = "auto"


def resolve_device(name: str, option: str = "--device") -> torch.device:
    """``name`` (``auto`` or a torch device) -> a usable :class:`torch.device`; a clear error when it is not."""
    import torch

    if name == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as err:
        message = str(err).split(". ")[0].splitlines()[0] if str(err) else type(err).__name__  # torch's first sentence
        raise GazelabError(f"{option} {name}: not usable here ({message}) — use cpu, or auto") from None
    return device


def lightning_devices(device: torch.device) -> dict[str, object]:
    """The ``accelerator`` / ``devices`` arguments of a Lightning Trainer that trains on ``device`` alone."""
    if device.type == "cuda":
        return {"accelerator": "gpu", "devices": [device.index or 0]}
    return {"accelerator": device.type, "devices": 1}
