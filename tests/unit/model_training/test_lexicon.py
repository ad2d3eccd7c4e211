"""VADER's lexicon as the RNN's fixed per-token features, and its words as whole tokens."""

import pytest
import torch

from model_training.lexicon import FEATURES, add_lexicon, vader_word_features
from tests.helpers import tiny_rnn
from tone.scoring import factory
from tone.scoring.rnn import BiGRUClassifier, load_tokenizer, minilm_dir


@pytest.fixture
def tokenizer():
    return load_tokenizer(minilm_dir() / "tokenizer.json", 64)


def test_words_wordpiece_splits_become_whole_tokens_started_at_their_pieces_mean(tokenizer):
    base = tokenizer.get_vocab_size()
    pieces = tokenizer.encode("lol", add_special_tokens=False).ids
    assert len(pieces) > 1  # WordPiece splits it: the lexicon's rating would be lost on the pieces
    embeddings = torch.randn(base, 5)
    table, features = add_lexicon(tokenizer, embeddings)
    lol = tokenizer.token_to_id("lol")
    assert lol is not None and lol >= base
    assert tokenizer.encode("LOL :) lol", add_special_tokens=False).ids == [lol, tokenizer.token_to_id(":)"), lol]
    # inside a longer word it stays WordPiece's
    assert lol not in tokenizer.encode("lolcats", add_special_tokens=False).ids
    assert table.shape == (tokenizer.get_vocab_size(), 5) and features.shape == (table.shape[0], len(FEATURES))
    assert torch.allclose(table[lol], embeddings[pieces].mean(0))
    assert torch.equal(table[:base], embeddings)  # the pretrained rows are untouched


def test_features_carry_valence_negation_and_boosters(tokenizer):
    _, features = add_lexicon(tokenizer, torch.zeros(tokenizer.get_vocab_size(), 2))
    words = vader_word_features()

    def row(word):
        return features[tokenizer.token_to_id(word)].tolist()

    assert row("good")[0] == pytest.approx(words["good"][0]) and row("good")[0] > 0.3
    assert row("horrible")[0] < -0.5
    assert row("not")[1] == 1.0 and row("never")[1] == 1.0
    assert row("very")[2] == 1.0 and row("slightly")[2] == -1.0
    assert row("table") == [0.0, 0.0, 0.0]
    # every value of every row stays in [-1, 1]
    assert float(features.abs().max()) <= 1.0


def test_lexicon_model_artifact_keeps_its_words_and_features(tmp_path):
    scorer = tiny_rnn(lexicon=True)
    scorer.save(tmp_path / "art")
    loaded = factory.load(tmp_path / "art", device="cpu")
    assert loaded.tokenizer.get_vocab_size() == scorer.tokenizer.get_vocab_size()
    assert loaded.model.lexicon is not None and torch.equal(loaded.model.lexicon, scorer.model.lexicon)
    # the features reach the output: zeroing them changes the scores
    texts = ["not good at all :(", "lol this is great"]
    before = loaded.predict_proba(texts)
    loaded.model.lexicon.zero_()
    loaded._fast = type(loaded._fast)(loaded.model)
    assert not torch.allclose(torch.from_numpy(before), torch.from_numpy(loaded.predict_proba(texts)))


def test_a_model_without_lexicon_has_no_lexicon_config_and_refuses_features():
    model = BiGRUClassifier(10, 4, 3, 3, 0.1, 0)
    assert "lexicon_dim" not in model.config and model.lexicon is None
    with pytest.raises(ValueError, match="lexicon features shape"):
        model.init_lexicon(torch.zeros(10, 3))
