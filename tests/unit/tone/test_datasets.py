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


def test_split_is_80_10_10_per_label_up_to_sampling_noise_and_disjoint():
    # The split hashes each text (copies must share a part), so counts are 80/10/10 only up to sampling noise.
    split = split_examples(_examples(5000, 3000, 2000))
    assert abs(len(split.train) - 8000) < 250 and abs(len(split.test) - 1000) < 120
    test_mix = Counter(e.label for e in split.test)
    for label, n in {"positive": 500, "negative": 300, "neutral": 200}.items():
        assert abs(test_mix[label] - n) < 4 * n**0.5, (label, test_mix[label])
    ids = [e.id for part in (split.train, split.val, split.test) for e in part]
    assert len(ids) == len(set(ids)) == 10000


def test_copies_of_a_tweet_never_straddle_train_and_test():
    base = _examples(300, 300, 300)
    copies = [Example(f"rt-{e.id}", f"RT @someone: {e.text.upper()}  http://t.co/x", "neutral") for e in base]
    split = split_examples(base + copies)
    part_of = {}
    for name in ("train", "val", "test"):
        for e in getattr(split, name):
            part_of.setdefault(e.id.removeprefix("rt-"), set()).add(name)
    assert all(len(parts) == 1 for parts in part_of.values())


def test_a_sources_split_is_the_same_alone_or_mixed():
    alone = split_examples(_examples())
    mixed = split_examples(_examples() + [Example(f"x{i}", f"other {i}", "neutral") for i in range(500)])
    assert {e.id for e in alone.test} == {e.id for e in mixed.test if not e.id.startswith("x")}


def test_crowdflower_drops_the_sealed_rows_and_decodes_bytes_safely(tmp_path):
    from tone.datasets import CROWDFLOWER_FILE, crowdflower_dir, load_crowdflower

    rows = [b"sentiment,confidence,text"]
    for n in range(1, 41):
        text = b"same text as row 16" if n in (16, 7) else b"tweet number %d" % n
        if n == 3:
            text = b"caf\xd5\xa2_\x8a\xce smart quotes"  # not UTF-8: mojibake
        rows.append(b"%s,%s,%s" % ([b"negative", b"neutral", b"positive"][n % 3], b"0.75", text))
    directory = crowdflower_dir(tmp_path)
    directory.mkdir(parents=True)
    (directory / CROWDFLOWER_FILE).write_bytes(b"\r\n".join(rows) + b"\r\n")
    examples = load_crowdflower(tmp_path)
    ids = {e.id for e in examples}
    assert "cf-16" not in ids and "cf-32" not in ids  # every 16th data row is sealed
    assert "cf-7" not in ids  # ... and every row with the same text as a sealed one
    assert len(examples) == 40 - 3
    assert next(e for e in examples if e.id == "cf-3").text == "caf _ smart quotes"
    assert all(e.weight == 0.75 for e in examples)


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


def test_a_small_source_can_be_repeated_and_its_copies_share_a_part(tmp_path):
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    small.write_text("".join(json.dumps({"text": f"small {i}", "label": "neutral"}) + "\n" for i in range(50)))
    large.write_text("".join(json.dumps({"text": f"large {i}", "label": "positive"}) + "\n" for i in range(200)))
    mixed = load_dataset(f"{small}*3,{large}", tmp_path)
    assert Counter(e.label for e in mixed) == {"neutral": 150, "positive": 200}
    assert len({e.id for e in mixed}) == len(mixed)  # copies get ids of their own
    split = split_examples(mixed)
    for part in (split.train, split.val, split.test):
        texts = Counter(e.text for e in part if e.text.startswith("small"))
        assert set(texts.values()) <= {3}  # all three copies of a text in the same part
    with pytest.raises(DatasetError, match="1..100"):
        load_dataset(f"{small}*0", tmp_path)
