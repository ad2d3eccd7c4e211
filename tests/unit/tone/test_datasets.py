import json
from collections import Counter

import pytest

from tone.datasets import (
    DatasetError,
    Example,
    load_dataset,
    load_sentiment140,
    load_table,
    load_tweeteval,
    split_examples,
)


def _examples(n_pos=500, n_neg=300, n_neu=200):
    labels = ["positive"] * n_pos + ["negative"] * n_neg + ["neutral"] * n_neu
    return [Example(str(i), f"text {i}", label) for i, label in enumerate(labels)]


def test_split_is_deterministic_and_order_independent():
    examples = _examples()
    a = split_examples(examples)
    b = split_examples(list(reversed(examples)))
    assert {e.id for e in a.test} == {e.id for e in b.test}
    assert {e.id for e in a.val} == {e.id for e in b.val}


def test_split_is_stratified_80_10_10_and_disjoint():
    split = split_examples(_examples())
    assert (len(split.train), len(split.val), len(split.test)) == (800, 100, 100)
    assert Counter(e.label for e in split.test) == {"positive": 50, "negative": 30, "neutral": 20}
    ids = [e.id for part in (split.train, split.val, split.test) for e in part]
    assert len(ids) == len(set(ids)) == 1000


def test_split_is_not_just_the_first_rows():
    split = split_examples(_examples())
    assert {e.id for e in split.test} != {str(i) for i in range(900, 1000)}


def test_tweeteval_directory(tmp_path):
    (tmp_path / "train_text.txt").write_text("good day\nbad day\nmeh\n")
    (tmp_path / "train_labels.txt").write_text("2\n0\n1\n")
    (tmp_path / "mapping.txt").write_text("0\tnegative\n1\tneutral\n2\tpositive\n")
    assert [(e.text, e.label) for e in load_tweeteval(tmp_path)] == [
        ("good day", "positive"),
        ("bad day", "negative"),
        ("meh", "neutral"),
    ]
    assert load_dataset(str(tmp_path), tmp_path) == load_tweeteval(tmp_path)


def test_tweeteval_length_mismatch_is_a_clear_error(tmp_path):
    (tmp_path / "train_text.txt").write_text("a\nb\n")
    (tmp_path / "train_labels.txt").write_text("1\n")
    with pytest.raises(DatasetError, match="2 lines but train_labels.txt has 1"):
        load_tweeteval(tmp_path)


def test_sentiment140_csv(tmp_path):
    path = tmp_path / "s140.csv"
    path.write_bytes(
        '"0","1","Mon","NO_QUERY","u1","awful caf\xe9"\n"4","2","Mon","NO_QUERY","u2","yay"\n'.encode("latin-1")
    )
    examples = load_sentiment140(path)
    assert [(e.id, e.text, e.label) for e in examples] == [("1", "awful café", "negative"), ("2", "yay", "positive")]
    assert load_dataset(str(path), tmp_path) == examples


def test_sentiment140_bad_polarity(tmp_path):
    path = tmp_path / "s140.csv"
    path.write_text('"3","1","Mon","NO_QUERY","u1","x"\n')
    with pytest.raises(DatasetError, match="polarity 0, 2 or 4"):
        load_sentiment140(path)


def test_csv_and_jsonl_tables(tmp_path):
    csv_path = tmp_path / "d.csv"
    csv_path.write_text("id,text,label\na,hello,Positive\n")
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(json.dumps({"text": "bye", "label": "negative"}) + "\n")
    assert load_table(csv_path) == [Example("a", "hello", "positive")]
    assert load_table(jsonl) == [Example("0", "bye", "negative")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"body": "x"}) + "\n")
    with pytest.raises(DatasetError, match="lacks the columns 'text' and 'label'"):
        load_table(bad)


def test_unknown_dataset_names_the_choices(tmp_path):
    with pytest.raises(DatasetError, match="vader-tweets"):
        load_dataset("nope", tmp_path)
