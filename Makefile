# Two commands on a fresh machine: `make demo` and `make test`. Both set up what they need first.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# Keep the demo's services off the default ports so a developer's own Kafka/Redis are left alone, and below
# Linux's ephemeral range (32768-60999): a client socket that happened to get port 35000 once kept moto from binding.
DEMO_ENV := TONE_STACK_DIR=$(CURDIR)/.demo-stack TONE_STACK_KAFKA_PORT=21092 TONE_STACK_KAFKA_CONTROLLER_PORT=21093 \
            TONE_STACK_REDIS_PORT=21379 \
            TONE_STACK_MOTO_PORT=21500 TONE_METRICS_PORT=21464 TONE_SPARK_UI_PORT=21040

.PHONY: setup system-deps demo test test-unit test-integration test-faults test-cluster lint lock clean

system-deps:
	@bash scripts/system-deps.sh

setup: system-deps
	@bash scripts/setup-venv.sh

demo: setup
	@$(DEMO_ENV) bash scripts/demo.sh

test: setup
	$(BIN)/python -m pytest

test-unit: setup
	$(BIN)/python -m pytest tests/unit

test-integration: setup
	$(BIN)/python -m pytest tests/integration

# The fault suite (about 10 minutes): kill -9 of the stream, Redis and the broker, fuzzed and poison input.
test-faults: setup
	$(BIN)/python -m pytest -m faults tests/faults -s

test-cluster: setup
	$(BIN)/python -m pytest -m cluster tests/cluster -s

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Regenerate constraints.txt from the current venv after changing dependencies in pyproject.toml.
lock:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^tweet-tone' > constraints.tmp
	{ head -2 constraints.txt; cat constraints.tmp; } > constraints.txt.new && rm constraints.tmp
	mv constraints.txt.new constraints.txt

clean:
	rm -rf .demo-stack .pytest_cache .mypy_cache .ruff_cache
	rm -f $(VENV)
