import numpy as np

from tone.scoring.vader import THRESHOLD, VaderScorer, compound_to_proba


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
