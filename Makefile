# One entry point for a fresh machine. `make demo` and `make test` are the README's two commands.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first and pinned: on these machines torch==2.13.0 is a CPU wheel on disk; an
# unpinned torch would pull a multi-GB CUDA build. Any torch >= 2.4 works.
TORCH ?= torch==2.13.0

.PHONY: setup demo test test-fast browser-deps bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[all]"

browser-deps:
	# Debian's Chromium for the Playwright tests (Playwright's own browser download cannot work here).
	if [ ! -x /usr/bin/chromium ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) || echo "chromium not installed: browser tests will skip"; fi

demo: setup
	$(BIN)/rnnkit demo

test: setup browser-deps
	$(BIN)/rnnkit data fetch
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser"

bench: setup
	$(BIN)/python bench/train_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
