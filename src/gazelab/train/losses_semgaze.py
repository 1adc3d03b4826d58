"""SemGaze's loss terms and the learnable temperature of its contrastive label loss.

SemGaze trains on in-frame people only with ``1000 x heatmap_mse_semgaze + 3 x angular + 1 x info_nce`` (the
weights live in the recipe). The label loss needs the vocabulary's text embeddings, each person's label id and
the temperature: :class:`SemanticTargets` (owned by the training module, which optimises its ``logit_scale``
and clamps it after every step) adds them to the batch as ``label_vocab``, ``label_ids`` and ``logit_scale``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gazelab.data.formats.gazehoi import read_vocab
from gazelab.errors import GazelabError
from gazelab.models.base import GazeOutput
from gazelab.models.vocab import DEFAULT_TEXT_MODEL, build_vocabulary, parse_label_list
from gazelab.train.losses import Batch, _zero, register_loss

INIT_TEMPERATURE = 0.07
MAX_LOGIT_SCALE = math.log(100.0)
"""CLIP's cap: the contrastive logits are scaled by at most 100."""


def _in_frame(batch: Batch) -> Tensor:
    return batch["inout"] == 1


@register_loss("heatmap_mse_semgaze")
def heatmap_mse_semgaze(output: GazeOutput, batch: Batch) -> Tensor:
    """Mean squared error of the raw heatmap against the Gaussian target, over in-frame people (recipe weight
    1000)."""
    inside = _in_frame(batch)
    if not bool(inside.any()):
        return _zero(output.heatmap)
    return F.mse_loss(output.heatmap[inside], batch["heatmaps"][inside].to(output.heatmap.dtype))


def gaze_directions(heads: Tensor, gaze: Tensor) -> tuple[Tensor, Tensor]:
    """Unit GT directions head centre -> mean annotator point [N, 2] (normalized coordinates of the square
    resized image), and which people have one (a known point away from the head centre)."""
    valid = (gaze >= 0).all(dim=-1)
    count = valid.sum(dim=1, keepdim=True)
    point = (gaze * valid[..., None]).sum(dim=1) / count.clamp(min=1)
    centre = (heads[:, :2] + heads[:, 2:]) / 2
    vector = point - centre
    ok = (count[:, 0] > 0) & (vector.norm(dim=1) > 1e-6)
    return F.normalize(vector, dim=1), ok


@register_loss("angular")
def angular(output: GazeOutput, batch: Batch) -> Tensor:
    """``(1 - cos) / 2`` between the predicted and the GT 2-D gaze direction, over in-frame people."""
    if output.gaze_vector is None:
        raise GazelabError("loss angular needs a model that predicts a gaze vector (SemGaze)")
    target, ok = gaze_directions(batch["heads"].to(output.gaze_vector), batch["gaze"].to(output.gaze_vector))
    use = ok & _in_frame(batch)
    if not bool(use.any()):
        return _zero(output.gaze_vector)
    cosine = F.cosine_similarity(output.gaze_vector[use], target[use], dim=1)
    return ((1 - cosine) / 2).mean()


@register_loss("info_nce")
def info_nce(output: GazeOutput, batch: Batch) -> Tensor:
    """Cross-entropy of each labelled in-frame person's embedding against the distinct GT labels of the batch:
    ``logits = emb . text_emb^T * exp(logit_scale)``."""
    if output.label_embedding is None:
        raise GazelabError("loss info_nce needs a model that predicts label embeddings (SemGaze)")
    if "label_ids" not in batch:
        raise GazelabError("loss info_nce needs a vocabulary: set model.vocabulary in the recipe")
    ids = batch["label_ids"].to(output.label_embedding.device)
    use = (ids >= 0) & _in_frame(batch)
    if not bool(use.any()):
        return _zero(output.label_embedding)
    unique, target = torch.unique(ids[use], return_inverse=True)
    texts = batch["label_vocab"][unique].to(output.label_embedding)
    logits = output.label_embedding[use] @ texts.T * batch["logit_scale"].exp()
    return F.cross_entropy(logits, target)


class SemanticTargets(nn.Module):
    """The vocabulary (text embeddings, not trained) and the learnable contrastive temperature.

    ``logit_scale`` starts at ``log(1 / 0.07)``; :meth:`clamp_` caps it at ``log(100)`` after each optimiser step.
    """

    def __init__(self, labels: Iterable[str], text_model: str = DEFAULT_TEXT_MODEL) -> None:
        super().__init__()
        self.vocabulary = build_vocabulary(labels, text_model)
        self.register_buffer("label_vocab", self.vocabulary.embeddings.clone(), persistent=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / INIT_TEMPERATURE)))

    def add_to(self, batch: dict) -> dict:
        """Adds ``label_ids`` (from the batch's ``labels``), ``label_vocab`` and ``logit_scale``."""
        batch["label_ids"] = self.vocabulary.label_ids(batch["labels"]).to(self.label_vocab.device)
        batch["label_vocab"] = self.label_vocab
        batch["logit_scale"] = self.logit_scale
        return batch

    @torch.no_grad()
    def clamp_(self) -> None:
        self.logit_scale.clamp_(max=MAX_LOGIT_SCALE)


def semantic_targets(vocabulary: str, text_model: str = DEFAULT_TEXT_MODEL) -> SemanticTargets:
    """The recipe's ``vocabulary`` (a ``vocab2id.json``, a file of names, or ``a,b,c``) -> its targets; a
    ``vocab2id.json`` is checked against the embeddings' order."""
    targets = SemanticTargets(parse_label_list(vocabulary), text_model)
    if vocabulary.endswith(".json"):
        targets.vocabulary.check_vocab2id(read_vocab(vocabulary), vocabulary)
    return targets
