"""VADER's lexicon as fixed per-token features for the RNN, and its words as whole tokens.

A few thousand labelled tweets cannot teach the polarity of the many words they rarely or never contain; VADER's
lexicon rates 7,500 of them (by ten human raters each), and knows the negations and boosters that turn them. The
RNN gets that knowledge as three fixed features per vocabulary entry beside its embedding:

- ``valence``: the lexicon's mean rating / 4, in [-1, 1] (0 for words it does not rate);
- ``negation``: 1 for VADER's negations (``not``, ``never``, ``isnt``...);
- ``booster``: +1 for intensifiers (``very``), -1 for dampeners (``slightly``).

Most lexicon entries are not single WordPiece tokens (``lol`` is ``lo ##l``; ``:)`` is ``: )``), so those words
become whole tokens of the artifact's own tokenizer (matched as whole words, after lower-casing), their
embeddings started at the mean of their pieces' embeddings. The tokenizer saved with the model carries them: the
scorer needs neither vaderSentiment nor this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import torch

if TYPE_CHECKING:
    from tokenizers import Tokenizer

FEATURES: Final = ("valence", "negation", "booster")
# VADER's ratings run from -4 (most negative) to +4.
MAX_RATING: Final = 4.0


def vader_word_features() -> dict[str, tuple[float, float, float]]:
    """Every single word VADER knows, lower-cased, with its three features."""
    from vaderSentiment import vaderSentiment as vs

    features: dict[str, list[float]] = {}
    for word, rating in vs.SentimentIntensityAnalyzer().lexicon.items():
        key = word.lower()
        # Where two spellings fold to one key (":D" and ":d"), the lower-case entry's own rating wins.
        if key not in features or word == key:
            features.setdefault(key, [0.0, 0.0, 0.0])[0] = max(-1.0, min(1.0, float(rating) / MAX_RATING))
    for word in vs.NEGATE:
        features.setdefault(word.lower(), [0.0, 0.0, 0.0])[1] = 1.0
    for word, boost in vs.BOOSTER_DICT.items():
        features.setdefault(word.lower(), [0.0, 0.0, 0.0])[2] = 1.0 if boost > 0 else -1.0
    return {w: (f[0], f[1], f[2]) for w, f in features.items() if w and not any(c.isspace() for c in w)}


def add_lexicon(tokenizer: Tokenizer, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Add VADER's words the tokenizer splits as whole tokens (in place); returns (embeddings, features).

    Both returned tables have one row per entry of the extended vocabulary. A new word's embedding is the mean of
    its WordPiece pieces' embeddings, so it starts where the pretrained model would have put it.
    """
    from tokenizers import AddedToken

    words = vader_word_features()
    vocab = tokenizer.get_vocab()
    new = sorted(w for w in words if w not in vocab)
    rows = []
    for word in new:
        pieces = tokenizer.encode(word, add_special_tokens=False).ids or [tokenizer.token_to_id("[UNK]") or 0]
        rows.append(embeddings[pieces].mean(0))
    # single_word: "lol" inside "lolcats" stays WordPiece's; normalized: matched after the tokenizer lower-cases.
    tokenizer.add_tokens([AddedToken(w, single_word=True, normalized=True) for w in new])
    size = tokenizer.get_vocab_size()
    table = torch.cat([embeddings, torch.stack(rows)]) if rows else embeddings
    if table.shape[0] != size:
        msg = f"the tokenizer has {size} entries after adding {len(new)} words, the embeddings {table.shape[0]}"
        raise ValueError(msg)
    features = torch.zeros(size, len(FEATURES))
    for token, index in tokenizer.get_vocab().items():
        if (values := words.get(token)) is not None:
            features[index] = torch.tensor(values)
    return table, features
