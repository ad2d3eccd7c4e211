import numpy as np
import pytest

from tone.labels import TONE_LABELS, polarity, rating_to_label
from tone.text import normalize_tweet


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@john_doe great game", "@user great game"),
        ("thanks @Bob12!", "thanks @user!"),
        ("@a @b_c_d @XYZ_123 hi", "@user @user @user hi"),
        ("mail me at jane@example.com", "mail me at jane@example.com"),
        ("see https://t.co/abc?x=1 now", "see http now"),
        ("www.example.org/page and HTTP://X.CO", "http and http"),
        ("fish &amp; chips &lt;3", "fish & chips <3"),
        ("  spaced \n out\t", "spaced out"),
    ],
)
def test_normalize_tweet(text, expected):
    assert normalize_tweet(text) == expected


@pytest.mark.parametrize(
    ("rating", "label"),
    [(2.7, "positive"), (0.5, "neutral"), (0.51, "positive"), (-0.5, "neutral"), (-0.51, "negative"), (0.0, "neutral")],
)
def test_rating_to_label(rating, label):
    assert rating_to_label(rating) == label


def test_polarity_is_pos_minus_neg_and_zero_for_other_label_maps():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32)
    assert np.allclose(polarity(probs, TONE_LABELS), [-0.6, 0.7])
    assert np.allclose(polarity(probs, ("anger", "joy", "sadness")), [0, 0])
