import json
import os
import re
import subprocess
import sys

from tests.helpers import REPO_ROOT
from tone import envvars


def run_tone(*args, env=None):
    code = "import sys; from tone_cli.main import app; sys.argv = ['tone', *sys.argv[1:]]; app()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False, timeout=60
    )


def test_help_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from tone_cli.main import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "heavy = [m for m in ('torch', 'transformers', 'pyspark', 'sagemaker', 'boto3', 'pandas', 'pydantic_settings')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_config_show_masks_secrets_and_reports_source():
    env = {**os.environ, envvars.REDIS_PASSWORD: "hunter2", envvars.KAFKA_PARTITIONS: "6"}
    result = run_tone("config", "show", "--json", env=env)
    assert result.returncode == 0, result.stderr
    rows = {r["env"]: r for r in json.loads(result.stdout)}
    assert "hunter2" not in result.stdout
    assert rows[envvars.REDIS_PASSWORD]["value"] == "**********"
    assert rows[envvars.KAFKA_PARTITIONS] == {**rows[envvars.KAFKA_PARTITIONS], "value": "6", "source": "env"}
    assert rows[envvars.KAFKA_TOPIC_TWEETS]["source"] == "default"


def test_bad_config_exits_2_with_the_setting_named():
    env = {**os.environ, envvars.KAFKA_PARTITIONS: "many"}
    result = run_tone("config", "show", env=env)
    assert result.returncode == 2
    assert envvars.KAFKA_PARTITIONS in result.stderr
    assert "Traceback" not in result.stderr


def documentation() -> str:
    """The README and every page under docs/: where commands and settings must be documented."""
    pages = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
    return "\n".join(p.read_text() for p in pages)


def test_every_command_has_a_documented_section_with_an_example():
    import typer.main

    from tone_cli.main import app

    def commands(group, prefix):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                yield from commands(cmd, f"{prefix} {name}")
            else:
                yield f"{prefix} {name}"

    docs = documentation()
    missing = [c for c in commands(typer.main.get_command(app), "tone") if f"### `{c}`" not in docs]
    assert not missing, f"neither the README nor docs/ has a section for: {missing}"
    for c in commands(typer.main.get_command(app), "tone"):
        section = docs.split(f"### `{c}`", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
        examples = [line for line in section.splitlines() if line.startswith("$ ") and c in line]
        assert examples, f"the section of {c} has no `$ {c} ...` example"


def test_the_readme_stays_short_and_its_links_resolve():
    readme = (REPO_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for page in [REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+?)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to a missing {target}"


def test_errors_become_exit_codes_in_one_place(monkeypatch):
    import typer
    from typer.testing import CliRunner

    from tone.errors import ConfigError, ToneError
    from tone_cli._errors import ToneGroup

    app = typer.Typer(cls=ToneGroup)
    sub = typer.Typer()
    app.add_typer(sub, name="group")

    @sub.command("boom")
    def boom(kind: str) -> None:
        raise {"config": ConfigError("TONE_X='y' is invalid"), "tone": ToneError("broker down; start it")}[kind]

    @app.command("other")
    def other() -> None:
        raise RuntimeError("a bug keeps its traceback")

    runner = CliRunner()
    config = runner.invoke(app, ["group", "boom", "config"])
    assert (config.exit_code, "TONE_X='y' is invalid" in config.output) == (2, True)
    tone = runner.invoke(app, ["group", "boom", "tone"])
    assert (tone.exit_code, "broker down; start it" in tone.output) == (1, True)
    assert "Traceback" not in tone.output
    bug = runner.invoke(app, ["other"])
    assert isinstance(bug.exception, RuntimeError)


def test_an_invalid_user_id_exits_2_before_touching_redis():
    env = {**os.environ, envvars.REDIS_URL: "redis://127.0.0.1:1/0"}  # nothing listens there
    result = run_tone("lookup", "tab\there", env=env)
    assert result.returncode == 2, result.stderr
    assert "user_id" in result.stderr


def test_every_setting_is_documented():
    from tone.settings import Settings, env_name

    docs = documentation()
    missing = [env_name(f) for f in Settings.model_fields if env_name(f) not in docs]
    assert not missing, f"neither the README nor docs/ names: {missing}"


def test_evaluate_reports_each_source_apart_with_its_confusion(tmp_path):
    # two sources on which VADER does very differently: a mix would average them into one number
    easy = [{"text": "I love this, it is wonderful", "label": "positive"}] * 40 + [
        {"text": "I hate this, it is awful", "label": "negative"}
    ] * 40
    hard = [{"text": f"the meeting is at {i} o'clock", "label": "negative"} for i in range(80)]
    files = []
    for name, rows in (("easy", easy), ("hard", hard)):
        # distinct texts so the hash split spreads them; the label rule stays the same
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({**r, "text": f"{r['text']} #{i}"}) + "\n" for i, r in enumerate(rows)))
        files.append(str(path))
    env = {**os.environ, envvars.DATA_DIR: str(tmp_path / "data"), "COLUMNS": "400"}
    result = run_tone(
        "evaluate", "vader", "--data", ",".join(files), "--split", "all", "--json",
        "--report-dir", str(tmp_path / "reports"), env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    reports = json.loads(result.stdout)
    assert list(reports) == files
    easy_r, hard_r = reports[files[0]], reports[files[1]]
    assert (easy_r["n"], hard_r["n"]) == (80, 80)
    assert easy_r["accuracy"] > 0.9 > hard_r["accuracy"]
    labels = hard_r["labels"]
    # every hard text is truly negative: only the negative row of its confusion matrix has counts
    for label, row in zip(labels, hard_r["confusion"], strict=True):
        assert sum(row) == (80 if label == "negative" else 0)
    assert sorted(p.name for p in (tmp_path / "reports").glob("*.json")) == [
        "eval-vader-easy.jsonl-all.json",
        "eval-vader-hard.jsonl-all.json",
    ]

    table = run_tone(
        "evaluate", "vader", "--data", ",".join(files), "--split", "all", "--report-dir", str(tmp_path / "r2"), env=env
    )
    assert table.returncode == 0, table.stderr
    assert table.stdout.index("easy.jsonl") < table.stdout.index("hard.jsonl")
    assert table.stdout.count("confusion (rows: true") == 2


def test_export_onnx_refuses_an_rnn_and_a_missing_export_names_the_fix(tmp_path):
    from tests.helpers import tiny_rnn, tiny_transformer_artifact

    rnn = tmp_path / "rnn"
    tiny_rnn().save(rnn)
    result = run_tone("models", "export-onnx", str(rnn), "--out", str(tmp_path / "out"))
    assert result.returncode == 1, result.stderr
    assert "is a rnn artifact: only transformers have an ONNX backend" in " ".join(result.stderr.split())
    plain = tiny_transformer_artifact(tmp_path / "plain", onnx=False)
    env = {**os.environ, envvars.TRANSFORMER_BACKEND: "onnx", envvars.DEVICE: "cpu"}
    result = run_tone("evaluate", str(plain), "--data", "vader-tweets", env=env)
    assert result.returncode == 2, result.stderr
    said = " ".join(result.stderr.split())
    assert "TONE_TRANSFORMER_BACKEND=onnx but artifact" in said and "export-onnx" in said


def test_a_checkpoint_uri_exits_2_naming_the_option_before_spark_starts():
    env = {**os.environ, envvars.REDIS_URL: "redis://127.0.0.1:1/0"}  # nothing listens there
    result = run_tone("stream", "--checkpoint", "s3a://bucket/ckpt", "--until-idle", "1", env=env)
    assert result.returncode == 2, result.stderr
    assert "--checkpoint 's3a://bucket/ckpt'" in result.stderr
    assert "s3a:// checkpoints are not supported" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_a_tampered_default_rnn_stops_tone_stream_with_what_to_do(tmp_path):
    """It was retrained over, silently; nothing is retrained or substituted behind the user's back now."""
    from tests.helpers import tiny_rnn

    art = tmp_path / "models" / "default-rnn"
    tiny_rnn().save(art)
    weights = art / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"tampered")
    env = {**os.environ, envvars.MODEL_DIR: str(tmp_path / "models"), envvars.REDIS_URL: "redis://127.0.0.1:1/0"}
    result = run_tone("stream", "--until-idle", "1", env=env)
    text = " ".join(result.stderr.split())
    assert result.returncode == 1, result.stderr
    assert "the default RNN in" in text and "failed its checksum" in text and "tone train --model rnn" in text
    assert "training" not in text and "Traceback" not in text
    assert weights.read_bytes().endswith(b"tampered")  # left as it was found


def test_an_empty_registry_stops_tone_stream_with_what_to_do(tmp_path):
    """It started 'with rnn' after a warning; the registry the user named holds nothing approved."""
    env = {**os.environ, envvars.SCORER: "registry", envvars.REGISTRY_URI: str(tmp_path / "registry"),
           envvars.MODEL_DIR: str(tmp_path / "models"), envvars.REDIS_URL: "redis://127.0.0.1:1/0"}  # fmt: skip
    result = run_tone("stream", "--until-idle", "1", env=env)
    text = " ".join(result.stderr.split())
    assert result.returncode == 2, result.stderr
    assert "has no approved version" in text and "tone models approve VERSION" in text
    assert not (tmp_path / "models" / "default-rnn").exists()  # nothing trained behind the user's back
