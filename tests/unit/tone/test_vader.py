import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tone.scoring.vader import THRESHOLD, VaderRules, VaderScorer, compound_to_proba


def test_argmax_reproduces_vaders_threshold_rule():
    compound = np.linspace(-1, 1, 401)
    probs = compound_to_proba(compound)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-6)
    expected = np.where(compound >= THRESHOLD + 1e-9, 2, np.where(compound <= -THRESHOLD - 1e-9, 0, 1))
    away_from_edges = np.abs(np.abs(compound) - THRESHOLD) > 1e-6
    assert (probs.argmax(axis=1)[away_from_edges] == expected[away_from_edges]).all()
    # polarity follows the compound score's sign and order
    pol = probs[:, 2] - probs[:, 0]
    assert (np.diff(pol) > 0).all()


def test_vader_scores_obvious_tweets():
    scorer = VaderScorer()
    results = scorer.score(["I love this, best day ever!", "This is awful and I hate it.", "The bus leaves at 5."])
    assert [r.label for r in results] == ["positive", "negative", "neutral"]
    assert results[0].polarity > 0.5 > -0.5 > results[1].polarity
    assert set(results[0].probs) == {"negative", "neutral", "positive"}
    assert scorer.predict_proba([]).shape == (0, 3)


# -- VaderRules: vaderSentiment's scores, faster ----------------------------------------------------------------------
# Words that trigger each of VADER's rules (negations, boosters and dampeners, "no", "least", "but", "kind of", the
# idioms, "never so", "without doubt", emoticons) mixed with lexicon words of both signs and plain words; generated
# sentences put them in every order and case, with punctuation on their edges and emoji between them.
RULE_WORDS = tuple(
    "not isn't never without doubt no nor or least at very but BUT kind of sort just enough so this the shit bomb bad "
    "ass badass to die for kiss death yeah right extremely EXTREMELY barely kinda uber friggin cut mustard dont".split()
)
SENTIMENT_WORDS = ("good", "GOOD", "great", "love", "hate", "HATE", "awful", "sux", "lol", "funny", "smart", "kind")
PLAIN_WORDS = ("the", "book", "was", "VADER", "is", "a", "movie", "I", "it", "today", "bus", "stop", "heart")
EDGES = ("", "", "", "!", "!!", "?", "??", "???", "????", ".", ",", ":)", ":D", "'", '"', "(", ")", "...", "-")
EMOJI = ("\U0001f498", "\U0001f601", "\U0001f44d", "\u2764", "\u263a")

word = st.tuples(
    st.sampled_from(EDGES), st.sampled_from(RULE_WORDS + SENTIMENT_WORDS + PLAIN_WORDS), st.sampled_from(EDGES)
).map("".join)
token = st.one_of(word, word, word, st.sampled_from(EMOJI), st.text(max_size=6))
sentence = st.lists(token, max_size=30).flatmap(
    lambda tokens: st.lists(
        st.sampled_from((" ", "  ", "", "\t", "\n")), min_size=len(tokens), max_size=len(tokens)
    ).map(lambda gaps: "".join(t + g for t, g in zip(tokens, gaps, strict=True)))
)

EXAMPLES = (  # the sentences vaderSentiment's own demo prints
    "VADER is smart, handsome, and funny.",
    "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
    "VADER is not smart, handsome, nor funny.",
    "At least it isn't a horrible book.",
    "The book was only kind of good.",
    "The plot was good, but the characters are uncompelling and the dialog is not great.",
    "Today only kinda sux! But I'll get by, lol",
    "Make sure you :) or :D today!",
    "Catch utf-8 emoji such as \U0001f498 and \U0001f48b and \U0001f601",
    "Not bad at all",
    "Sentiment analysis has never been this good!",
    "With VADER, sentiment analysis is the shit!",
    "On the other hand, VADER is quite bad ass",
    "Without a doubt, an excellent idea.",
    "Roger Dodger is one of the least compelling variations on this theme.",
    "Roger Dodger is at least compelling as a variation on the theme.",
    "I have no money nor love, no time or patience",
    "no good",
    "I said no",
    "I HATE THIS BAD DAY!!",
    "EXTREMELY GOOD",
    "It is not the sort of good I like, just enough fun to die for",
    "",
    "   ",
)


def _theirs(analyzer, text):
    s = analyzer.polarity_scores(text)
    return (s["neg"], s["neu"], s["pos"], s["compound"])


@pytest.fixture(scope="module")
def both():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer(), VaderRules()


def test_vader_rules_give_vaderSentiments_floats_on_its_examples(both):
    analyzer, rules = both
    for text in EXAMPLES:
        assert rules.polarity(text) == _theirs(analyzer, text), text


@settings(max_examples=1500, deadline=None)
@given(text=sentence)
def test_vader_rules_give_vaderSentiments_floats_on_any_sentence(both, text):
    analyzer, rules = both
    assert rules.polarity(text) == _theirs(analyzer, text)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_vader_rules_give_vaderSentiments_floats_on_any_string(both, text):
    analyzer, rules = both
    assert rules.polarity(text) == _theirs(analyzer, text)


def test_vader_rules_give_vaderSentiments_floats_on_every_lexicon_word_in_context(both):
    analyzer, rules = both
    for i, entry in enumerate(sorted(rules.lexicon)):
        text = f"{RULE_WORDS[i % len(RULE_WORDS)]} {entry} {RULE_WORDS[(i * 7) % len(RULE_WORDS)]} {entry.upper()}!"
        assert rules.polarity(text) == _theirs(analyzer, text), text


def test_the_scorers_use_the_fast_rules(both):
    from tone.scoring.stack import VaderFeatures

    analyzer, _ = both
    texts = list(EXAMPLES)
    compound = VaderScorer().compound(texts)
    assert compound.tolist() == [_theirs(analyzer, t)[3] for t in texts]
    features = VaderFeatures()(texts)
    assert features[:, :4].tolist() == [list(_theirs(analyzer, t)) for t in texts]
