"""Every phrase list of the interaction detectors in one index, so a message is tested against all at once.

A detector asks for the first pattern of a list (a `Family`) that a user
message matches, by any of `text.matches`' three layers.  Asked pattern by
pattern that is about 290 tests per user message; most of them can be
ruled out without looking at the pattern:

- an exact phrase needs the message to hold the phrase's first token;
- a token cosine needs a token in common (a non-zero dot product), and
  enough of the message's weight on pattern words: by Cauchy-Schwarz the
  cosine is at most the norm of the message's counts of pattern words over
  the norm of all its counts, so a long message of other words skips the
  layer;
- a trigram Jaccard of 0.65 needs a trigram in common, and a message with
  no more than (largest pattern's trigrams / 0.65) distinct trigrams: a
  longer message cannot reach it against any pattern, and its trigram set
  is then not even built (it is counted up to that bound and given up).

So the index maps first tokens, tokens and trigrams to the patterns
holding them; a message's candidates are collected from its own tokens
and (short messages only) trigrams, and tried in list order with the dot
products and shared-trigram counts already summed.  The answer, for every
family at once, is kept on the message: each detector that asks again
gets it for free.  `text.matches` stays the reference the index is tested
against.
"""

from __future__ import annotations

from .floats import at_least
from .report import Signal, SignalType
from .text import CHAR_NGRAM_THRESHOLD, TOKEN_COSINE_THRESHOLD, NormalizedMessage, Pattern


class Family:
    """An ordered list of phrase patterns; a message's match is the first pattern it matches."""

    __slots__ = ("index", "patterns")

    def __init__(self, index: int, patterns: tuple[Pattern, ...]) -> None:
        self.index = index
        self.patterns = patterns

    def first_match(self, message: NormalizedMessage) -> Pattern | None:
        return _BOOK.first_matches(message).get(self.index)


class _Book:
    """All families' patterns, indexed by first token, token and trigram."""

    def __init__(self) -> None:
        self.patterns: list[Pattern] = []
        self.family_of: list[int] = []
        self.families = 0
        self.by_head: dict[str, list[int]] = {}
        self.by_token: dict[str, list[tuple[int, int]]] = {}
        self.by_ngram: dict[str, list[int]] = {}
        self.ngram_limit = 0
        """Most distinct trigrams a message may have and still reach the Jaccard threshold with a pattern."""

    def add(self, texts: tuple[str, ...]) -> Family:
        family = Family(self.families, tuple(Pattern(text) for text in texts))
        self.families += 1
        for pattern in family.patterns:
            number = len(self.patterns)
            self.patterns.append(pattern)
            self.family_of.append(family.index)
            if pattern.token_count:
                self.by_head.setdefault(pattern.phrase.split(" ", 2)[1], []).append(number)
            for token, count in pattern.counts.items():
                self.by_token.setdefault(token, []).append((number, count))
            for ngram in pattern.ngrams:
                self.by_ngram.setdefault(ngram, []).append(number)
            self.ngram_limit = max(self.ngram_limit, int(len(pattern.ngrams) / CHAR_NGRAM_THRESHOLD) + 1)
        return family

    def first_matches(self, message: NormalizedMessage) -> dict[int, Pattern]:
        """Family index -> the first pattern of that family `message` matches (families it misses absent)."""
        cached = message.phrase_matches
        if cached is not None and cached[0] == len(self.patterns):
            return cached[1]
        found = self._first_matches(message)
        message.phrase_matches = (len(self.patterns), found)
        return found

    def _first_matches(self, message: NormalizedMessage) -> dict[int, Pattern]:
        found: dict[int, Pattern] = {}
        if not message.tokens:
            return found
        counts, norm = message.counts()
        phrase_candidates: set[int] = set()
        for head in counts.keys() & self.by_head.keys():
            phrase_candidates.update(self.by_head[head])
        dots: dict[int, int] = {}
        common = counts.keys() & self.by_token.keys()
        # Cauchy-Schwarz: no pattern's cosine exceeds sqrt(sum of the common tokens' squared counts) / norm.
        if sum(counts[token] ** 2 for token in common) >= (TOKEN_COSINE_THRESHOLD * (1 - 1e-6) * norm) ** 2:
            for token in common:
                count = counts[token]
                for number, times in self.by_token[token]:
                    dots[number] = dots.get(number, 0) + count * times
        shared: dict[int, int] = {}
        ngrams = message.ngrams_up_to(self.ngram_limit)
        if ngrams:
            for ngram in ngrams & self.by_ngram.keys():
                for number in self.by_ngram[ngram]:
                    shared[number] = shared.get(number, 0) + 1
        for number in sorted(phrase_candidates.union(dots, shared)):
            family = self.family_of[number]
            if family in found:
                continue
            pattern = self.patterns[number]
            if (
                (number in phrase_candidates and pattern.phrase in message.padded)
                or (
                    ngrams is not None
                    and number in shared
                    and at_least(
                        shared[number] / (len(ngrams) + len(pattern.ngrams) - shared[number]),
                        CHAR_NGRAM_THRESHOLD,
                    )
                )
                or (number in dots and at_least(dots[number] / (norm * pattern.norm), TOKEN_COSINE_THRESHOLD))
            ):
                found[family] = pattern
        return found


_BOOK = _Book()


def family(texts: tuple[str, ...]) -> Family:
    """Register a phrase list (at import time) and return it as a family."""
    return _BOOK.add(texts)


PhraseKinds = tuple[tuple[Family, SignalType, str], ...]
"""(family, the signal its match makes, `pattern_type`), in the order they are tried."""


def first_phrase_signal(kinds: PhraseKinds, index: int, message: NormalizedMessage) -> Signal | None:
    """The signal of the first family in `kinds` that `message` (at `index`) matches; None if none does."""
    for candidates, kind, label in kinds:
        pattern = candidates.first_match(message)
        if pattern is not None:
            return Signal.make(kind, index, pattern.raw, {"pattern_type": label})
    return None
