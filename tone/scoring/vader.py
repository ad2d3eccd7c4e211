"""VADER, the lexicon scorer: no training, ~0.02 ms a tweet. The zero-training fallback and a weak labeler."""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from typing import Final

import numpy as np

from tone.labels import TONE_LABELS
from tone.scoring.base import Scorer

# VADER's own thresholds on the compound score: >= 0.05 positive, <= -0.05 negative.
THRESHOLD: Final = 0.05
# Softmax over (-c, t, c) / T: the arg max reproduces VADER's threshold rule exactly (neutral wins iff |c| < t),
# and T spreads the probabilities so that polarity tracks the compound score.
TEMPERATURE: Final = 0.25


def compound_to_proba(compound: np.ndarray) -> np.ndarray:
    """(negative, neutral, positive) probabilities from VADER compound scores."""
    c = np.asarray(compound, dtype=np.float64)
    logits = np.stack([-c, np.full_like(c, THRESHOLD), c], axis=1) / TEMPERATURE
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    probs: np.ndarray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return probs


class VaderRules:
    """VADER's ``polarity_scores`` (vaderSentiment 3.3.2): the same floats, about 2.8 times faster on tweets.

    vaderSentiment lower-cases the whole sentence again for each rule it checks at each lexicon word
    (``_negation_check`` and ``_special_idioms_check`` rebuild the list: quadratic in the words), and walks every text
    a character at a time for emoji. The default RNN's stack runs VADER on each tweet it scores, where that was 29% of
    the scorer's time. This does each of those once per text, skips the rules for texts without a lexicon word, and
    applies the same rules to the same values in the same order, so each score is the same float: on all 58,955 texts
    of VADER's four ground-truth files and CrowdFlower's tweets (docs/models.md), and in ``tests/unit/tone/
    test_vader.py`` on generated sentences built from the words each rule looks for. The lexicon, the emoji table
    and the constants are vaderSentiment's own.
    """

    def __init__(self) -> None:
        """Load vaderSentiment's lexicon and emoji table."""
        from vaderSentiment import vaderSentiment as vs

        analyzer = vs.SentimentIntensityAnalyzer()
        self._vs = vs
        self.lexicon: dict[str, float] = analyzer.lexicon
        self._emojis: dict[str, str] = analyzer.emojis
        # Its emoji loop looks at one character at a time, so only the one-character entries can ever match.
        self._emoji_chars = frozenset(k for k in analyzer.emojis if len(k) == 1)
        self._negate = frozenset(vs.NEGATE)
        self._boosters: dict[str, float] = vs.BOOSTER_DICT
        self._special: dict[str, float] = vs.SPECIAL_CASES
        # A phrase of SPECIAL_CASES or BOOSTER_DICT matches a window of words only if each of its words is one of these
        # (words never hold whitespace): a window without any of them needs no phrase built.
        self._phrase_words = frozenset(w for k in (*vs.SPECIAL_CASES, *vs.BOOSTER_DICT) if " " in k for w in k.split())
        self._punctuation = string.punctuation
        self._punctuation_chars = frozenset(string.punctuation)

    def _replace_emoji(self, text: str) -> str:
        """The emoji step of vaderSentiment: each emoji character becomes its description, space-separated."""
        out = []
        prev_space = True
        for ch in text:
            description = self._emojis.get(ch)  # only one-character entries can equal a character
            if description is not None:
                if not prev_space:
                    out.append(" ")
                out.append(description)
                prev_space = False
            else:
                out.append(ch)
                prev_space = ch == " "
        return "".join(out)

    def _strip(self, token: str) -> str:
        """VADER's _strip_punc_if_word: the token without its edge punctuation, unless that leaves 2 characters."""
        stripped = token.strip(self._punctuation)
        return token if len(stripped) <= 2 else stripped

    def _negated(self, word: str) -> bool:
        return word in self._negate or "n't" in word

    def polarity(self, text: str) -> tuple[float, float, float, float]:
        """(neg, neu, pos, compound), exactly as ``SentimentIntensityAnalyzer.polarity_scores`` rounds them."""
        if not self._emoji_chars.isdisjoint(text):
            text = self._replace_emoji(text)
        text = text.strip()
        edge = self._punctuation_chars  # a token that neither starts nor ends with punctuation is kept as it is
        words = [t if t[0] not in edge and t[-1] not in edge else self._strip(t) for t in text.split()]
        if not words:
            return 0.0, 0.0, 0.0, 0.0
        lowers = [w.lower() for w in words]
        lexicon = self.lexicon
        # Every word outside the lexicon scores 0 (VADER's boosters and "kind of" too): only the others need rules.
        hits = [i for i, low in enumerate(lowers) if low in lexicon]
        if not hits:
            return 0.0, 1.0, 0.0, 0.0  # all neutral: what VADER's arithmetic gives for n zeros
        n = len(words)
        caps = sum(map(str.isupper, words))
        is_cap_diff = 0 < n - caps < n
        sentiments: list[float] = [0] * n
        boosters = self._boosters
        for i in hits:
            low = lowers[i]
            if low in boosters or (low == "kind" and i < n - 1 and lowers[i + 1] == "of"):
                continue
            sentiments[i] = self._valence(words, lowers, i, is_cap_diff)
        if "but" in lowers:  # its rule depends on list.index over equal values: run vaderSentiment's own
            sentiments = self._vs.SentimentIntensityAnalyzer._but_check(words, sentiments)
            return self._score(sentiments, sentiments, text)
        return self._score(sentiments, [sentiments[i] for i in hits], text)

    def _valence(self, words: list[str], lowers: list[str], i: int, is_cap_diff: bool) -> float:  # noqa: C901, PLR0912
        """The valence of lexicon word ``i`` after VADER's rules (its ``sentiment_valence``), same order of steps."""
        lexicon, n_scalar = self.lexicon, self._vs.N_SCALAR
        low = lowers[i]
        valence = lexicon[low]
        n = len(lowers)
        if low == "no" and i != n - 1 and lowers[i + 1] in lexicon:
            valence = 0.0
        if (
            (i > 0 and lowers[i - 1] == "no")
            or (i > 1 and lowers[i - 2] == "no")
            or (i > 2 and lowers[i - 3] == "no" and lowers[i - 1] in ("or", "nor"))
        ):
            valence = lexicon[low] * n_scalar
        if is_cap_diff and words[i].isupper():
            if valence > 0:
                valence += self._vs.C_INCR
            else:
                valence -= self._vs.C_INCR

        for start_i in range(3):
            j = i - (start_i + 1)
            if i > start_i and lowers[j] not in lexicon:
                s = self._scalar(words[j], lowers[j], valence, is_cap_diff)
                if start_i == 1 and s != 0:
                    s = s * 0.95
                if start_i == 2 and s != 0:
                    s = s * 0.9
                valence = valence + s
                valence = self._negation(valence, lowers, start_i, i)
                if start_i == 2:
                    valence = self._idioms(valence, lowers, i)

        # VADER's "least" rule (its _least_check)
        if i > 1 and lowers[i - 1] not in lexicon and lowers[i - 1] == "least":
            if lowers[i - 2] != "at" and lowers[i - 2] != "very":
                valence = valence * n_scalar
        elif i > 0 and lowers[i - 1] not in lexicon and lowers[i - 1] == "least":
            valence = valence * n_scalar
        return valence

    def _scalar(self, word: str, low: str, valence: float, is_cap_diff: bool) -> float:
        """A preceding booster or dampener's effect (VADER's scalar_inc_dec)."""
        scalar = 0.0
        if low in self._boosters:
            scalar = self._boosters[low]
            if valence < 0:
                scalar *= -1
            if word.isupper() and is_cap_diff:
                if valence > 0:
                    scalar += self._vs.C_INCR
                else:
                    scalar -= self._vs.C_INCR
        return scalar

    def _negation(self, valence: float, lowers: list[str], start_i: int, i: int) -> float:
        """VADER's _negation_check."""
        n_scalar = self._vs.N_SCALAR
        if start_i == 0:
            if self._negated(lowers[i - 1]):
                valence = valence * n_scalar
        elif start_i == 1:
            if lowers[i - 2] == "never" and (lowers[i - 1] == "so" or lowers[i - 1] == "this"):
                valence = valence * 1.25
            elif lowers[i - 2] == "without" and lowers[i - 1] == "doubt":
                pass
            elif self._negated(lowers[i - 2]):
                valence = valence * n_scalar
        elif (lowers[i - 3] == "never" and (lowers[i - 2] == "so" or lowers[i - 2] == "this")) or (
            lowers[i - 1] == "so" or lowers[i - 1] == "this"
        ):
            valence = valence * 1.25
        elif lowers[i - 3] == "without" and (lowers[i - 2] == "doubt" or lowers[i - 1] == "doubt"):
            pass
        elif self._negated(lowers[i - 3]):
            valence = valence * n_scalar
        return valence

    def _idioms(self, valence: float, lowers: list[str], i: int) -> float:
        """VADER's _special_idioms_check (only called with i >= 3)."""
        n = len(lowers)
        window = lowers[i - 3 : i + 3]
        if self._phrase_words.isdisjoint(window):
            return valence
        special, boosters = self._special, self._boosters
        w3, w2, w1, w0 = lowers[i - 3], lowers[i - 2], lowers[i - 1], lowers[i]
        for seq in (f"{w1} {w0}", f"{w2} {w1} {w0}", f"{w2} {w1}", f"{w3} {w2} {w1}", f"{w3} {w2}"):
            if seq in special:
                valence = special[seq]
                break
        if n - 1 > i:
            zeroone = f"{w0} {lowers[i + 1]}"
            if zeroone in special:
                valence = special[zeroone]
        if n - 1 > i + 1:
            zeroonetwo = f"{w0} {lowers[i + 1]} {lowers[i + 2]}"
            if zeroonetwo in special:
                valence = special[zeroonetwo]
        for n_gram in (f"{w3} {w2} {w1}", f"{w3} {w2}", f"{w2} {w1}"):
            if n_gram in boosters:
                valence = valence + boosters[n_gram]
        return valence

    @staticmethod
    def _score(sentiments: list[float], nonzero: list[float], text: str) -> tuple[float, float, float, float]:
        """VADER's score_valence: (neg, neu, pos, compound), rounded as it rounds them.

        ``nonzero``: the items of ``sentiments`` that may be non-zero, in order (the zeros add nothing to its sums).
        """
        sum_s = float(sum(sentiments))
        ep_count = min(text.count("!"), 4)
        qm_count = text.count("?")
        qm_amplifier: float = 0
        if qm_count > 1:
            qm_amplifier = qm_count * 0.18 if qm_count <= 3 else 0.96
        punct = ep_count * 0.292 + qm_amplifier
        if sum_s > 0:
            sum_s += punct
        elif sum_s < 0:
            sum_s -= punct
        compound = sum_s / math.sqrt((sum_s * sum_s) + 15)
        compound = -1.0 if compound < -1.0 else 1.0 if compound > 1.0 else compound

        pos_sum, neg_sum, neu_count = 0.0, 0.0, len(sentiments) - len(nonzero)
        for score in nonzero:
            if score > 0:
                pos_sum += float(score) + 1
            elif score < 0:
                neg_sum += float(score) - 1
            elif score == 0:
                neu_count += 1
        if pos_sum > math.fabs(neg_sum):
            pos_sum += punct
        elif pos_sum < math.fabs(neg_sum):
            neg_sum -= punct
        total = pos_sum + math.fabs(neg_sum) + neu_count
        pos = math.fabs(pos_sum / total)
        neg = math.fabs(neg_sum / total)
        neu = math.fabs(neu_count / total)
        return round(neg, 3), round(neu, 3), round(pos, 3), round(compound, 4)


class VaderScorer(Scorer):
    """Hutto & Gilbert's VADER (ICWSM 2014), mapped onto the three tone classes."""

    kind = "vader"
    labels = TONE_LABELS
    languages = ("en",)  # an English lexicon: other languages score neutral (docs/languages.md)

    def __init__(self) -> None:
        """Load VADER's lexicon (bundled with vaderSentiment, no download)."""
        self._rules = VaderRules()
        self.version = "vader-3.3.2"

    def compound(self, texts: Sequence[str]) -> np.ndarray:
        """VADER's compound score in [-1, 1] for each text."""
        polarity = self._rules.polarity
        return np.array([polarity(t)[3] for t in texts], dtype=np.float64)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities; the arg max follows VADER's +-0.05 rule."""
        if not texts:
            return np.zeros((0, 3), dtype=np.float32)
        return compound_to_proba(self.compound(texts))
