"""Label vocabularies for semantic gaze models: class names -> L2-normalised text embeddings.

SemGaze compares each person's predicted label embedding with the embeddings of a vocabulary's class names,
so the vocabulary is open: any list of names works at inference (``gazelab predict --labels cup,phone``).
Embeddings come from the CLIP ViT-B/16 text tower (``CLIPTextModelWithProjection`` ``text_embeds`` of the raw
class name, as the released models were trained) through ``transformers``. They are cached on disk per
(text model, vocabulary) under ``$GAZELAB_HOME/vocab`` (read back with ``weights_only=True``), so the text
model is loaded once per vocabulary, not per run.

``random`` as the text model gives every name a fixed pseudo-random unit vector (seeded by the name): for
synthetic data, whose classes need distinct embeddings but no language, and for tests without a download.

Dataset label ids follow ``vocab2id.json`` (id = alphabetical rank, see
:func:`gazelab.data.formats.gazehoi.read_vocab`); :meth:`Vocabulary.check_vocab2id` verifies that a
vocabulary's rows are in exactly that order, so label ids index the embedding matrix.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gazelab.errors import GazelabError
from gazelab.models.checkpoints import weights_home

DEFAULT_TEXT_MODEL = "openai/clip-vit-base-patch16"
RANDOM_TEXT_MODEL = "random"
RANDOM_DIM = 512


@dataclass(frozen=True)
class Vocabulary:
    """Class names and their embeddings (row i is ``labels[i]``)."""

    labels: tuple[str, ...]
    embeddings: Tensor
    """[V, D] float32, L2-normalised."""

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def ids(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def check_vocab2id(self, vocab2id: dict[str, int], source: str = "vocab2id.json") -> None:
        """Refuse a ``vocab2id`` mapping whose ids are not this vocabulary's rows (label ids would point at the
        wrong embeddings)."""
        if vocab2id != self.ids:
            wrong = sorted(k for k in set(vocab2id) | set(self.ids) if vocab2id.get(k) != self.ids.get(k))
            raise GazelabError(
                f"{source}: {len(wrong)} label ids disagree with the vocabulary's order (e.g. {wrong[:5]}) — build "
                "the vocabulary from the same vocab2id.json"
            )

    def label_ids(self, labels: Sequence[str | None]) -> Tensor:
        """Label names -> ids (None -> -1); a name outside the vocabulary is an error."""
        ids = self.ids
        unknown = sorted({label for label in labels if label is not None and label not in ids})
        if unknown:
            raise GazelabError(f"labels {unknown[:5]} are not in the vocabulary of {len(ids)} classes")
        return torch.tensor([-1 if label is None else ids[label] for label in labels], dtype=torch.long)

    def top(self, embeddings: Tensor, k: int = 3) -> list[tuple[tuple[str, float], ...]]:
        """The ``k`` most similar labels of each embedding [P, D] with their cosine similarity, best first."""
        similarity = F.normalize(embeddings.float(), dim=-1) @ self.embeddings.to(embeddings.device).T
        scores, index = similarity.topk(min(k, len(self)), dim=1)
        return [
            tuple((self.labels[i], round(s, 4)) for i, s in zip(row_i, row_s))
            for row_i, row_s in zip(index.tolist(), scores.tolist())
        ]


def parse_label_list(value: str) -> list[str]:
    """``--labels``: comma-separated names, or a file (``vocab2id.json``, or one name per line)."""
    path = Path(value)
    if path.is_file():
        if path.suffix == ".json":
            try:
                names = list(json.loads(path.read_text(encoding="utf-8")))
            except (json.JSONDecodeError, TypeError) as err:
                raise GazelabError(f"{path}: not a JSON list or vocab2id mapping ({err})") from None
        else:
            names = path.read_text(encoding="utf-8").splitlines()
    else:
        names = value.split(",")
    labels = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    if not labels:
        raise GazelabError(f"--labels {value!r}: no label names (give e.g. cup,phone,screen or a file)")
    return labels


def build_vocabulary(
    labels: Iterable[str], text_model: str = DEFAULT_TEXT_MODEL, cache: bool = True, sort: bool = True
) -> Vocabulary:
    """Embeddings of ``labels`` (sorted alphabetically, the ``vocab2id`` order, unless ``sort=False``).

    ``text_model`` is a Hugging Face name or local folder of a CLIP model, or ``random``. Cached on disk per
    (text model, labels) unless ``cache=False``.
    """
    names = sorted(set(labels)) if sort else list(dict.fromkeys(labels))
    if not names:
        raise GazelabError("a vocabulary needs at least one label")
    if text_model == RANDOM_TEXT_MODEL:
        return Vocabulary(tuple(names), random_embeddings(names))
    path = cache_path(text_model, names)
    if cache and path.is_file():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        if stored.get("labels") == names and stored.get("model") == text_model:
            return Vocabulary(tuple(names), stored["embeddings"])
    model, tokenizer = load_text_model(text_model)
    embeddings = encode_texts(names, model, tokenizer)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"model": text_model, "labels": names, "embeddings": embeddings}, tmp)
        tmp.replace(path)
    return Vocabulary(tuple(names), embeddings)


def cache_path(text_model: str, labels: Sequence[str]) -> Path:
    digest = hashlib.sha256("\n".join([text_model, *labels]).encode("utf-8")).hexdigest()[:20]
    return weights_home() / "vocab" / f"{digest}.pt"


def random_embeddings(labels: Sequence[str], dim: int = RANDOM_DIM) -> Tensor:
    """A fixed unit vector per name (seeded by the name's hash), independent of the other names."""
    rows = []
    for label in labels:
        seed = int.from_bytes(hashlib.blake2b(label.encode("utf-8"), digest_size=8).digest(), "little") >> 1
        rows.append(torch.randn(dim, generator=torch.Generator().manual_seed(seed)))
    return F.normalize(torch.stack(rows), dim=-1)


def load_text_model(name: str) -> tuple[nn.Module, object]:
    """``CLIPTextModelWithProjection`` and its tokenizer (from the Hugging Face cache, downloading once)."""
    try:
        from transformers import AutoTokenizer, CLIPTextModelWithProjection
    except ImportError:
        raise GazelabError("label embeddings need transformers: pip install 'gazelab[semisup]'") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = CLIPTextModelWithProjection.from_pretrained(name)
    except (OSError, ValueError) as err:  # offline, not cached, or an incomplete folder
        raise GazelabError(
            f"could not load the CLIP text model {name!r} ({str(err).splitlines()[0]}) — connect once so "
            "Hugging Face caches it (HF_HOME), or pass a local model folder"
        ) from None
    return model.eval(), tokenizer


@torch.no_grad()
def encode_texts(labels: Sequence[str], model: nn.Module, tokenizer: object) -> Tensor:
    """L2-normalised ``text_embeds`` of the raw names [V, D] (float32, CPU)."""
    tokens = tokenizer(list(labels), padding=True, truncation=True, return_tensors="pt")  # type: ignore[operator]
    device = next(model.parameters()).device
    out = model(**{k: v.to(device) for k, v in tokens.items()})
    return F.normalize(out.text_embeds.float(), dim=-1).cpu()
