# DAGnostics developer commands. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= training,dev,postgres
PYTEST_ARGS ?=

.PHONY: install test lint format bench demo demo-stop demo-status clean

install: $(VENV)/.installed

# Re-installs when the package metadata or the pins change; constraints.txt pins the CPU build of torch.
$(VENV)/.installed: pyproject.toml setup.cfg constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --constraint constraints.txt --editable ".[$(EXTRAS)]"
	touch $@

# pytest exits 5 when it collected no tests (e.g. a -k filter that matches nothing): not a failure.
test: install
	bash scripts/test_services.sh $(PY) -m pytest $(PYTEST_ARGS) || { rc=$$?; [ $$rc -eq 5 ] || exit $$rc; }

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	$(PY) benchmarks/run_all.py

demo: install
	bash scripts/demo.sh start

demo-stop:
	bash scripts/demo.sh stop

demo-status:
	bash scripts/demo.sh status

clean:
	bash scripts/demo.sh stop || true
	rm -rf .demo .pytest_cache .ruff_cache build dist *.egg-info test-artifacts
