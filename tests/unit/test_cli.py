import json
import os
import subprocess
import sys

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
