# make demo / make test work on a fresh machine: they create .venv and install what they need,
# and are quick when everything is already there (stamp files track pyproject.toml).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
IRIS   := examples/iris

.PHONY: demo test test-fast lint typecheck pytest bench azurite worker313 browser clean

AZURITE_VERSION := 3.37.0
AZURITE := .azurite/node_modules/.bin/azurite-blob

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.stamp-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[train,serve]'
	touch $@

$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.stamp-demo

# Azurite (the Blob Storage emulator) for the integration tests, pinned, in an ignored folder.
$(AZURITE):
	mkdir -p .azurite
	echo '{"name":"servefn-azurite","private":true}' > .azurite/package.json
	npm install --prefix .azurite --no-audit --no-fund --loglevel=error azurite@$(AZURITE_VERSION)

azurite: $(AZURITE)

# A Python 3.13 venv with azure-functions 2.x and the worker library azure-functions-runtime, in
# an ignored folder, for tests/azure/test_worker_compat.py. Quick when current (stamp file); when
# Python 3.13 is missing it says so and the test skips (fails under CI=true). WORKER_PYTHON
# overrides $(pyenv root)/versions/3.13.0/bin/python3.13.
worker313: $(VENV)/.stamp-dev
	$(BIN)/python scripts/check_worker.py build $(if $(WORKER_PYTHON),--python $(WORKER_PYTHON))

# Headless Chromium and its driver (Debian's packages) for tests/devhost/test_docs_page.py.
browser:
	command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 \
		|| { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; }

# Train each example's model if its model.zip is missing, serve it with `servefn serve`, ask over
# HTTP: the iris walkthrough, the penguins (categorical and missing values), then the diabetes
# study's gradient-boosted trees.
demo: $(VENV)/.stamp-demo
	$(BIN)/python $(IRIS)/demo.py
	$(BIN)/python examples/penguins/demo.py
	$(BIN)/python examples/diabetes/demo.py

lint: $(VENV)/.stamp-dev
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(VENV)/.stamp-dev
	$(BIN)/mypy src

pytest: $(VENV)/.stamp-dev $(AZURITE) worker313 browser
	$(BIN)/pytest

test: lint typecheck pytest

# The unit tier: no Azurite, subprocess, server, browser or soak (markers in pyproject.toml; a test
# that uses the azurite fixture is marked integration by tests/support/markers.py). Under a minute.
test-fast: $(VENV)/.stamp-dev
	$(BIN)/pytest -m "not integration and not browser and not soak"

$(VENV)/.stamp-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $@ $(VENV)/.stamp-dev $(VENV)/.stamp-demo

# The benchmark suite (benchmarks/run.py; BENCH_ARGS="--quick" for a smoke run). wrk, the HTTP
# load generator, comes from Debian's packages when missing; without it an asyncio client is used.
# bench_http pins each server and wrk to separate cores with taskset (util-linux).
bench: $(VENV)/.stamp-bench
	command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk; } \
		|| echo "wrk is not installed: bench_http uses its slower asyncio client"
	command -v taskset >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq util-linux; } \
		|| echo "taskset is not installed: bench_http runs its servers and wrk unpinned"
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .azurite .worker313 .mypy_cache .ruff_cache .pytest_cache
