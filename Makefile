# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
# torch/torchvision are pinned to the builds most machines can fetch quickly; any torch >= 2.4 works.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
# The locked install (LOCKED=1, what CI runs): every package at the version and sha256 hashes of
# requirements/ci.lock, compiled by `make lock` for Python 3.11 on Linux x86_64 (docs/security.md).
LOCK := requirements/ci.lock
LOCK_EXTRAS := curate deploy tune heic pretrained postgres cloud dev
LOCK_VENV ?= .venv-lock
LOCK_ARGS ?=

.PHONY: demo test lint typecheck unit install install-locked lock clean-demo bench-quick

ifeq ($(LOCKED),1)
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --require-hashes -r $(LOCK)
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)
else
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PINS)
	$(PIP) install -q -e '.[all,dev]'
	touch $(STAMP)
endif

install: $(STAMP)

install-locked:
	$(MAKE) LOCKED=1 install

# Keeps the pins that still satisfy pyproject.toml; `make lock LOCK_ARGS=--upgrade` takes the newest releases.
lock:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q pip-tools==7.6.2
	CUSTOM_COMPILE_COMMAND='make lock' $(LOCK_VENV)/bin/pip-compile -q --generate-hashes --allow-unsafe \
		--strip-extras $(LOCK_EXTRAS:%=--extra %) --no-emit-index-url --no-emit-find-links $(LOCK_ARGS) \
		-o $(LOCK) pyproject.toml requirements/ci.in

demo: $(STAMP)
	$(PY) -m picsift.demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(VENV)/bin/pytest -q -n 2 --dist loadfile

test: lint typecheck unit

bench-quick: $(STAMP)
	for f in bench/*.py; do $(PY) $$f --quick || exit 1; done
