import pytest

from model_training.hparams import HParams
from model_training.metrics import classification_report


def test_per_model_defaults():
    assert HParams(model="rnn").lr == 1e-3
    assert HParams(model="transformer").lr == 3e-5
    assert HParams(model="transformer", lr=1e-4).lr == 1e-4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": 0.0}, "lr=0.0 is out of range"),
        ({"dropout": 0.95}, "dropout=0.95 is out of range"),
        ({"epochs": 0}, "epochs=0 is out of range"),
        ({"model": "cnn"}, "model must be one of rnn, transformer"),
        ({"lr": float("nan")}, "lr must be a number"),
        ({"warmup": 0.9}, "allowed [0.0, 0.5]"),
    ],
)
def test_out_of_range_values_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        HParams(**kwargs)


def test_hyperparameters_and_cli_round_trip():
    hp = HParams(model="rnn", lr=3e-3, epochs=4, batch_size=16, hidden_size=64, dropout=0.2, seed=5)
    sm = hp.to_hyperparameters()
    assert all(isinstance(v, str) for v in sm.values())
    assert HParams.from_hyperparameters(sm) == hp
    args = hp.to_cli_args()
    assert args[args.index("--batch-size") + 1] == "16"
    assert args[args.index("--hidden-size") + 1] == "64"
    with pytest.raises(ValueError, match="unknown hyperparameters"):
        HParams.from_hyperparameters({"learning_rate": "0.1"})
    with pytest.raises(ValueError, match="epochs='many'"):
        HParams.from_hyperparameters({"epochs": "many"})


def test_classification_report_on_a_known_confusion():
    labels = ["negative", "neutral", "positive"]
    y_true = ["negative"] * 4 + ["neutral"] * 2 + ["positive"] * 4
    y_pred = [
        "negative",
        "negative",
        "negative",
        "positive",
        "neutral",
        "negative",
        "positive",
        "positive",
        "positive",
        "neutral",
    ]
    r = classification_report(y_true, y_pred, labels)
    assert r["confusion"] == [[3, 0, 1], [1, 1, 0], [0, 1, 3]]
    assert r["accuracy"] == pytest.approx(0.7)
    neg = r["per_class"]["negative"]
    assert neg["precision"] == pytest.approx(3 / 4)
    assert neg["recall"] == pytest.approx(3 / 4)
    f1s = [2 * 0.75 * 0.75 / 1.5, 2 * 0.5 * 0.5 / 1.0, 2 * 0.75 * 0.75 / 1.5]
    assert r["macro_f1"] == pytest.approx(sum(f1s) / 3)
    assert r["macro_recall"] == pytest.approx((0.75 + 0.5 + 0.75) / 3)
