# Two entry points, both safe to run on a fresh machine:
#   make demo   install lmc and run the example on the embedded model (no key, no network)
#   make test   install lmc with its test tools and run the checks CI runs
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXAMPLE := examples/qa/program.lmp

# llama-cpp-python has no wheel on PyPI: build one once, portable (a -march=native build crashed
# on CPUs with AMX), and keep it where every later install finds it.
LLAMA_VERSION := 0.3.36
WHEELS := $(HOME)/.cache/lmc/wheels
ARCH := $(shell uname -m)
LLAMA_WHEEL := $(WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-py3-none-linux_$(ARCH).whl
LLAMA_CMAKE := -DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF
ifeq ($(ARCH),x86_64)
LLAMA_CMAKE += -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
endif
PIP_INSTALL := $(BIN)/python -m pip install --quiet --find-links $(WHEELS)

.PHONY: demo test install install-dev graphviz chromium lint typecheck unit

demo: install graphviz
	$(BIN)/lmc check $(EXAMPLE)
	$(BIN)/lmc run $(EXAMPLE) --input question="What is the capital of France?"
	$(BIN)/lmc show examples/rag/program.lmp -o build/MultiHopRAG.svg

test: install-dev graphviz chromium lint typecheck unit

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python $(LLAMA_WHEEL)
	$(PIP_INSTALL) -e .

install-dev: $(BIN)/python $(LLAMA_WHEEL)
	$(PIP_INSTALL) -e '.[dev]'

$(LLAMA_WHEEL): | $(BIN)/python
	@echo "building llama-cpp-python $(LLAMA_VERSION) once (about 6 minutes on 2 cores)"
	CMAKE_ARGS="$(LLAMA_CMAKE)" $(BIN)/python -m pip wheel --quiet --no-cache-dir --no-deps \
	  llama-cpp-python==$(LLAMA_VERSION) -w $(WHEELS)

# `lmc show` lays pictures out with Graphviz's dot: Debian's package where we may install it.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && apt-get install -y -qq graphviz >/dev/null; \
	  else \
	    echo "note: install Graphviz (apt-get install graphviz / brew install graphviz) for lmc show"; \
	  fi; }

# Reports are checked in a real browser (tests marked `browser`): Debian's Chromium, headless.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "note: install Chromium (apt-get install chromium) for the browser tests of reports"; \
	  fi; }

lint:
	$(BIN)/ruff check lmc passes backends grammar tests bench
	$(BIN)/ruff format --check lmc passes backends grammar tests bench

# lmc.backends and lmc.passes live in top-level folders that the package maps; mypy cannot follow
# that mapping, so it checks the package as installed.
typecheck:
	rm -rf build/typed
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --target build/typed .
	cd build/typed && ../../$(BIN)/mypy --config-file ../../pyproject.toml -p lmc

# pytest exits 5 when it collects no test; that is not a failure of the code.
unit:
	$(BIN)/pytest; status=$$?; if [ $$status -eq 5 ]; then exit 0; else exit $$status; fi
