"""The key noun of a VQA answer: the word whose probability the Grad-CAM explains.

GCDR's rule (with a part-of-speech tagger): the first contiguous run of NOUN / PROPN / PRON tokens, and its
last word ("a cell phone on the table" -> "phone"); when the answer has no noun, its last word. spaCy does the
tagging when it and an English pipeline (``en_core_web_sm``, ``_md`` or ``_lg``) are installed; spaCy is not a
dependency of gazelab.

Without spaCy a documented rule stands in: split the answer into words, treat determiners, possessives,
prepositions, conjunctions, auxiliaries and gaze verbs ("looking", "watching") as separators, and take the last
word of the first remaining run — the same "first run, last word" as the tagger rule, so the two agree on the
short noun phrases VQA models answer with ("his phone" -> "phone", "man on the left" -> "man").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

SPACY_MODELS = ("en_core_web_sm", "en_core_web_md", "en_core_web_lg")
NOUN_TAGS = {"NOUN", "PROPN", "PRON"}

DETERMINERS = {"a", "an", "the", "this", "that", "these", "those", "some", "any", "each", "every", "no", "another"}
POSSESSIVES = {"my", "your", "his", "her", "its", "our", "their", "whose"}
PREPOSITIONS = {
    "at", "on", "in", "of", "to", "with", "for", "from", "by", "into", "onto", "over", "under", "near", "behind",
    "across", "toward", "towards", "through", "up", "down", "out", "off", "above", "below", "beside", "besides",
    "between", "around", "about", "inside", "outside", "upon", "along", "against", "next", "front", "within",
}  # fmt: skip
OTHER_SEPARATORS = {
    "and", "or", "but", "is", "are", "was", "were", "be", "being", "looking", "watching", "staring", "seeing",
    "reading", "holding", "using", "something",
}  # fmt: skip
SEPARATORS = DETERMINERS | POSSESSIVES | PREPOSITIONS | OTHER_SEPARATORS
WORD = re.compile(r"[\w'’-]+")


@dataclass(frozen=True)
class KeyNoun:
    """The key word and where it is in the answer (character span), for mapping it to sub-word tokens."""

    word: str
    start: int
    end: int


@lru_cache(maxsize=1)
def _spacy() -> Any | None:
    """An English spaCy pipeline, or None when spaCy or every English model is missing."""
    try:
        import spacy
    except ImportError:
        return None
    for name in SPACY_MODELS:
        try:
            return spacy.load(name, disable=["ner", "parser", "lemmatizer"])
        except OSError:
            continue
    return None


def _is_separator(word: str) -> bool:
    lower = word.lower()
    return lower in SEPARATORS or lower.endswith(("'s", "’s"))


def rule_key_noun(answer: str) -> KeyNoun | None:
    """The rule used without spaCy (module docstring); None for an answer without words."""
    words = list(WORD.finditer(answer))
    if not words:
        return None
    run: list[re.Match[str]] = []
    for match in words:
        if _is_separator(match.group()):
            if run:
                break
            continue
        run.append(match)
    last = run[-1] if run else words[-1]
    return KeyNoun(last.group(), last.start(), last.end())


def tagged_key_noun(answer: str, nlp: Any) -> KeyNoun | None:
    """GCDR's rule on spaCy tags: last word of the first NOUN/PROPN/PRON run, else the last word."""
    tokens = [t for t in nlp(answer) if not t.is_punct and not t.is_space]
    if not tokens:
        return None
    run = []
    for token in tokens:
        if token.pos_ in NOUN_TAGS:
            run.append(token)
        elif run:
            break
    last = run[-1] if run else tokens[-1]
    return KeyNoun(last.text, last.idx, last.idx + len(last.text))


def key_noun(answer: str, use_spacy: bool = True) -> KeyNoun | None:
    """The key noun of ``answer``: spaCy's tags when available (and ``use_spacy``), the rule otherwise."""
    nlp = _spacy() if use_spacy else None
    return tagged_key_noun(answer, nlp) if nlp is not None else rule_key_noun(answer)


def key_noun_method() -> str:
    """Which method :func:`key_noun` uses here (recorded in the store metadata)."""
    return "spacy" if _spacy() is not None else "rule"
