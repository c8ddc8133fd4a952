# Two entry points, both safe to run on a fresh machine:
#   make demo   install lmc and run the example program
#   make test   install lmc with its test tools and run the checks CI runs
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXAMPLE := examples/rag/program.lmp

.PHONY: demo test install install-dev graphviz lint typecheck unit

demo: install graphviz
	$(BIN)/lmc check $(EXAMPLE)
	$(BIN)/lmc show $(EXAMPLE) -o build/MultiHopRAG.svg

test: install-dev graphviz lint typecheck unit

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .

install-dev: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'

# `lmc show` lays pictures out with Graphviz's dot: Debian's package where we may install it.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && apt-get install -y -qq graphviz >/dev/null; \
	  else \
	    echo "note: install Graphviz (apt-get install graphviz / brew install graphviz) for lmc show"; \
	  fi; }

lint:
	$(BIN)/ruff check lmc passes backends grammar tests
	$(BIN)/ruff format --check lmc passes backends grammar tests

typecheck:
	$(BIN)/mypy

# pytest exits 5 when it collects no test; that is not a failure of the code.
unit:
	$(BIN)/pytest; status=$$?; if [ $$status -eq 5 ]; then exit 0; else exit $$status; fi
