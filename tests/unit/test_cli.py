import json
import os
import subprocess
import sys
from pathlib import Path

from tone import envvars


def run_tone(*args, env=None):
    code = "import sys; from tone.cli import app; sys.argv = ['tone', *sys.argv[1:]]; app()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False, timeout=60
    )


def test_help_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from tone.cli import app\n"
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


def test_every_command_has_a_readme_section_with_an_example():
    import typer.main

    from tone.cli import app

    def commands(group, prefix):
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                yield from commands(cmd, f"{prefix} {name}")
            else:
                yield f"{prefix} {name}"

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [c for c in commands(typer.main.get_command(app), "tone") if f"### `{c}`" not in readme]
    assert not missing, f"README lacks a section for: {missing}"
    for c in commands(typer.main.get_command(app), "tone"):
        section = readme.split(f"### `{c}`", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
        examples = [line for line in section.splitlines() if line.startswith("$ ") and c in line]
        assert examples, f"README section of {c} has no `$ {c} ...` example"
