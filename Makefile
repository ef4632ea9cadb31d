# The two commands: `make demo` and `make test`. Both bootstrap .venv/ on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BYTECODE := $(VENV)/.bytecode

export RAY_AUTH_MODE ?= disabled
# a single-machine Ray keeps all its sockets on 127.0.0.1 (see runtime/local/runtime_host.py)
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER ?= 0
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: demo test venv bytecode clean lock

venv: $(STAMP) $(BYTECODE)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "ttr needs Python 3.11+"'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,local]'
	@touch $(STAMP)

# Every Ray worker process (each tenant is one) imports Ray, botocore, pydantic and ours: without
# cached bytecode (a venv installed without compiling it, PYTHONDONTWRITEBYTECODE set) each one
# compiles them from source again, about 0.8 s of CPU per worker (measured, issue 11). Compiled
# once per install; ours on every run (only what changed is recompiled).
$(BYTECODE): $(STAMP)
	$(PY) -m compileall -qq -j 0 $(VENV)/lib
	@touch $(BYTECODE)

bytecode: $(BYTECODE)
	@$(PY) -m compileall -qq runtime actors

demo: $(STAMP) bytecode
	$(VENV)/bin/ttr demo

test: $(STAMP) bytecode
	$(VENV)/bin/ruff check runtime actors tests scripts
	@bash scripts/ensure-chromium.sh
	$(PY) -m pytest -q -rs

clean:
	rm -rf $(VENV) .pytest_cache .ttr

# The production image's dependencies, every one pinned with its hashes (deploy/Dockerfile installs
# them with pip --require-hashes). Re-run after changing dependencies in pyproject.toml.
lock:
	uv pip compile pyproject.toml deploy/requirements-build.in --generate-hashes --python-version 3.11 \
	    --python-platform x86_64-manylinux_2_28 --only-binary :all: --custom-compile-command "make lock" \
	    -o deploy/requirements.lock
