# make demo / make test work on a fresh machine: they create .venv and install what they need,
# and are quick when everything is already there (stamp files track pyproject.toml).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
IRIS   := examples/iris

.PHONY: demo test lint typecheck pytest bench azurite clean

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

# Train the iris model if model.zip is missing, serve it with `servefn serve`, ask over HTTP.
demo: $(VENV)/.stamp-demo
	$(BIN)/python $(IRIS)/demo.py

lint: $(VENV)/.stamp-dev
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(VENV)/.stamp-dev
	$(BIN)/mypy src

pytest: $(VENV)/.stamp-dev $(AZURITE)
	$(BIN)/pytest

test: lint typecheck pytest

bench: $(VENV)/.stamp-dev
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .azurite .mypy_cache .ruff_cache .pytest_cache
