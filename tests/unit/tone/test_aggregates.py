import itertools
import random

import pytest

from tone.aggregates.deltas import Ewma, Scored, batch_deltas, hour_bucket

H = 3600.0


def _tw(user, t, label="positive", pol=0.5, probs=None):
    probs = probs or {"negative": 0.1, "neutral": 0.2, "positive": 0.7}
    return Scored(user, f"{user}-{t}", t, label, probs, pol, "text", "v1")


def test_ewma_of_one_point_is_the_point():
    assert Ewma.of([(100.0, 0.8)], H).value() == pytest.approx(0.8)
    assert Ewma().value() is None


def test_ewma_weights_halve_every_half_life():
    # a point one half-life older weighs half as much: (0.5*1 + 1*0) / (0.5 + 1)
    assert Ewma.of([(0.0, 1.0), (H, 0.0)], H).value() == pytest.approx(0.5 / 1.5)
    assert Ewma.of([(0.0, 1.0), (2 * H, 0.0)], H).value() == pytest.approx(0.25 / 1.25)


def test_ewma_does_not_depend_on_order_or_batch_boundaries():
    rng = random.Random(3)
    points = [(rng.uniform(0, 10 * H), rng.uniform(-1, 1)) for _ in range(40)]
    whole = Ewma.of(points, H)
    shuffled = points[:]
    rng.shuffle(shuffled)
    parts = [Ewma.of(shuffled[i : i + 7], H) for i in range(0, 40, 7)]
    merged = Ewma()
    for part in reversed(parts):
        merged = merged.merge(part, H)
    assert merged.value() == pytest.approx(whole.value())
    assert merged.t == pytest.approx(whole.t)


def test_batch_deltas_counts_means_and_recent():
    tweets = [
        _tw("a", 10.0),
        _tw("a", 30.0, "negative", -0.6, {"negative": 0.7, "neutral": 0.2, "positive": 0.1}),
        _tw("b", 20.0),
        _tw("a", 20.0),
    ]
    deltas = {d.user_id: d for d in batch_deltas(tweets, H, recent_k=2)}
    a = deltas["a"]
    assert a.n == 3
    assert a.counts == {"positive": 2, "negative": 1}
    assert a.prob_sums["positive"] == pytest.approx(0.7 + 0.1 + 0.7)
    assert a.polarity_sum == pytest.approx(0.5 - 0.6 + 0.5)
    assert (a.first_seen, a.last_seen) == (10.0, 30.0)
    assert [r["t"] for r in a.recent] == [30.0, 20.0]  # newest first, at most K
    assert deltas["b"].n == 1


def test_hour_buckets_are_utc():
    assert hour_bucket(0) == "1970010100"
    tweets = [_tw("a", 3599.0), _tw("a", 3600.0), _tw("a", 3601.0, "neutral")]
    (delta,) = batch_deltas(tweets, H, 5)
    assert delta.hourly == {"1970010100": {"positive": 1}, "1970010101": {"positive": 1, "neutral": 1}}


@pytest.mark.parametrize("perm", list(itertools.permutations(range(3))))
def test_deltas_do_not_depend_on_tweet_order(perm):
    tweets = [_tw("a", 10.0, pol=0.1), _tw("a", 5000.0, pol=-0.3), _tw("a", 9000.0, pol=0.9)]
    (delta,) = batch_deltas([tweets[i] for i in perm], H, 5)
    (ref,) = batch_deltas(tweets, H, 5)
    assert delta.ewma.value() == pytest.approx(ref.ewma.value())
    assert delta.recent == ref.recent
