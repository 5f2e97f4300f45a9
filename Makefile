# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
# torch/torchvision are pinned to the builds most machines can fetch quickly; any torch >= 2.4 works.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: demo test lint typecheck unit install clean-demo bench-quick

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH_PINS)
	$(PIP) install -q -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

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
