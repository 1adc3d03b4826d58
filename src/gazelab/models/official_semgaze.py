"""Official SemGaze checkpoints -> :class:`~gazelab.models.semgaze.SemGaze`, strictly.

The released files are Lightning ``.ckpt`` checkpoints: the weights sit under ``state_dict`` (unwrapped by
:func:`~gazelab.models.checkpoints.load_state_dict_file`, read with ``weights_only=True``) with the model's
names prefixed by ``model.``; keys outside ``model.`` belong to the Lightning module (metrics, loss state) and
are not part of the model. A plain state dict with the model's own names (gazelab's export) loads too.
``image_tokenizer.pos_emb`` is the fixed sin-cos position embedding: it is recomputed, so a file's copy is
only checked for its shape.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from gazelab.models.checkpoints import CheckpointError, LoadReport, load_state
from gazelab.models.semgaze import SemGaze

PREFIX = "model."
POS_EMB = "image_tokenizer.pos_emb"


def semgaze_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Model weights of an official file: ``model.``-prefixed keys unprefixed (others dropped), or the file as is."""
    if any(key.startswith(PREFIX) for key in state_dict):
        return {key[len(PREFIX) :]: value for key, value in state_dict.items() if key.startswith(PREFIX)}
    return dict(state_dict)


def load_semgaze(model: SemGaze, state_dict: Mapping[str, Tensor], source: str) -> LoadReport:
    """Load an official SemGaze checkpoint (or gazelab's export) into ``model``; refuse anything that does not fit."""
    state = semgaze_state_dict(state_dict)
    pos_emb = state.pop(POS_EMB, None)
    expected = model.image_tokenizer.pos_emb.shape
    if pos_emb is not None and pos_emb.numel() != expected.numel():
        raise CheckpointError(
            f"{source}: {POS_EMB} has shape {tuple(pos_emb.shape)}, the model needs {tuple(expected)} "
            "(a different width or image size)"
        )
    return load_state(model, state, source)


def semgaze_export(model: SemGaze, include_backbone: bool = True) -> dict[str, Tensor]:
    """gazelab's SemGaze weights in the official names (a SemGaze file always holds its image encoder, so
    ``include_backbone`` is accepted for the exporter interface and ignored)."""
    return {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
