#!/usr/bin/env bash
# `make demo`: the main job on embedded defaults. Until the stream job lands (issue 4) it brings up the real
# local stack, shows it working (a round trip through the broker and Redis), and stops it again.
set -euo pipefail
tone=.venv/bin/tone
cleanup() { if [ "${KEEP:-0}" != 1 ]; then "$tone" stack down; else echo "KEEP=1: stack left running"; fi; }
trap cleanup EXIT
"$tone" stack up
"$tone" stack status
eval "$("$tone" stack env)"
"$tone" stack check
