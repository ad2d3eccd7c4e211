"""Small models and data the tests build themselves (no hub, no downloads)."""

from __future__ import annotations

import os
import random
from pathlib import Path

from tone.datasets import Example

POSITIVE_WORDS = ["love", "great", "awesome", "happy", "wonderful", "best", "amazing", "nice"]
NEGATIVE_WORDS = ["hate", "awful", "terrible", "sad", "worst", "horrible", "angry", "bad"]
NEUTRAL_WORDS = ["table", "tuesday", "bus", "report", "meeting", "window", "paper", "train"]
SUBJECTS = ["the movie", "my day", "this phone", "the game", "our team", "the weather"]


def toy_examples(n: int = 120, seed: int = 0) -> list[Example]:
    """A learnable 3-class set: the tone word decides the label."""
    rng = random.Random(seed)
    pools = {"positive": POSITIVE_WORDS, "negative": NEGATIVE_WORDS, "neutral": NEUTRAL_WORDS}
    out = []
    for i in range(n):
        label = ("positive", "negative", "neutral")[i % 3]
        word = rng.choice(pools[label])
        out.append(Example(f"toy-{i}", f"{rng.choice(SUBJECTS)} is {word} @user_{i} http://x.co/{i}", label))
    return out


def tiny_roberta_dir(directory: Path, labels: tuple[str, ...] = ("negative", "neutral", "positive")) -> Path:
    """A 2-layer RoBERTa (random weights) with a byte-level BPE tokenizer trained here, saved as a HF directory."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    corpus = [e.text for e in toy_examples(300)] + ["@user http"] * 10
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        corpus, vocab_size=400, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    )
    bpe.save_model(str(directory))
    # from_pretrained(dir), not RobertaTokenizerFast(vocab_file=...): the latter silently builds a 5-token vocab.
    tokenizer = RobertaTokenizerFast.from_pretrained(str(directory), model_max_length=128)
    config = RobertaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=140,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={k: i for i, k in enumerate(labels)},
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    RobertaForSequenceClassification(config).save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def tiny_rnn(
    labels: tuple[str, ...] = ("negative", "neutral", "positive"), hidden: int = 8, seed: int = 0, lexicon: bool = False
):
    """An RNN scorer on MiniLM's tokenizer with small random embeddings (fast to build and run); ``lexicon`` adds
    VADER's words and features as training does."""
    import torch

    from tone.scoring.rnn import BiGRUClassifier, RNNScorer, load_tokenizer, minilm_dir

    torch.manual_seed(seed)
    tokenizer = load_tokenizer(minilm_dir() / "tokenizer.json", 64)
    embeddings, features = torch.randn(tokenizer.get_vocab_size(), 16), None
    if lexicon:
        from model_training.lexicon import add_lexicon

        embeddings, features = add_lexicon(tokenizer, embeddings)
    dim = 0 if features is None else features.shape[1]
    model = BiGRUClassifier(tokenizer.get_vocab_size(), 16, hidden, len(labels), 0.1, 0, lexicon_dim=dim)
    model.init_embeddings(embeddings)
    if features is not None:
        model.init_lexicon(features)
    return RNNScorer(model, tokenizer, labels, device="cpu", batch_size=7)


REPO_ROOT = Path(__file__).resolve().parents[1]


# The settings a `tone` subprocess needs to reach the same topics, keys and services as the test.
SERVICE_FIELDS = (
    "kafka_bootstrap_servers",
    "kafka_topic_tweets",
    "kafka_topic_dlq",
    "kafka_topic_scored",
    "redis_url",
    "redis_key_prefix",
)


def settings_env(settings, fields=SERVICE_FIELDS, **extra: str) -> dict[str, str]:
    """os.environ plus each of ``fields`` of ``settings`` under its own variable (tone.settings.env_name; secrets
    revealed), plus ``extra`` (variable -> value)."""
    from tone.settings import env_name

    def text(value) -> str:
        return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)

    return {**os.environ, **{env_name(f): text(getattr(settings, f)) for f in fields}, **extra}


def tiny_transformer_artifact(directory: Path, *, onnx: bool = True, validation=None) -> Path:
    """A tiny RoBERTa saved as a transformer artifact, with its ONNX export (fp32 and int8, guard on toy data)."""
    from model_training.onnx_export import export_onnx
    from tone.scoring.transformer import TransformerScorer

    scorer = TransformerScorer.from_pretrained(
        tiny_roberta_dir(directory.parent / f"{directory.name}-hf"), device="cpu"
    )
    extra = {}
    if onnx:
        extra["onnx"] = export_onnx(
            scorer, directory, toy_examples(60) if validation is None else validation, say=lambda _: None
        )
    scorer.save(directory, metrics={"test_macro_f1": 0.5}, **extra)
    return directory


def write_jsonl(path: Path, examples) -> Path:
    """Labelled examples as a JSON-lines dataset file (text, label), loadable by tone.datasets.load_dataset."""
    import json

    path.write_text("".join(json.dumps({"text": e.text, "label": e.label}) + "\n" for e in examples))
    return path
