# F2RVLM — one-command set-up. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED ?= False
export TOKENIZERS_PARALLELISM ?= false
export PYTHONDONTWRITEBYTECODE ?= 1

.PHONY: help install test test-all demo demo-cli lint bench clean train-tiny demo-model realchat-model ablation sync-demo-code space-bundle sample-exports serve

help: ## this list
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  make %-12s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## create .venv and install f2rvlm with the extras the tests need

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[train,space,data,corpus,serve,dev]"
	touch $@

test: install ## run the fast test suite (offline, tiny models)
	$(PY) -m pytest -q

test-all: install ## run every test, slow ones included
	$(PY) -m pytest -q -m ""

demo: install ## serve the Gradio Space on 127.0.0.1 (uses/builds the default model first)
	$(PY) space/app.py

demo-cli: install ## the default model on shipped sample dialogues, printed in the terminal
	$(PY) -m f2rvlm.cli.demo

PORT ?= 8000
serve: install ## serve MODEL=DIR (an `f2rvlm export --for-serving` folder) on an OpenAI-compatible endpoint, PORT=8000 (docs/serving.md)
	@test -n "$(MODEL)" || { echo "usage: make serve MODEL=outputs/serving/tiny-demo [PORT=8000]"; exit 2; }
	$(VENV)/bin/f2rvlm serve --model $(MODEL) --port $(PORT)

BUDGET ?= 30
train-tiny: install ## CPU pipeline: synthetic data -> SFT -> curriculum -> GRPO -> eval -> export (BUDGET=30 minutes)
	$(PY) recipes/train_tiny.py --budget_minutes $(BUDGET)

REAL_CHATS ?= ../shared/data/locomo-dev
demo-model: install ## rebuild the committed default model models/tiny-demo: train-tiny VLM, then its text scorer (~80 min on 2 cores)
	$(PY) recipes/train_tiny.py --budget_minutes $(BUDGET) --export_dir models/tiny-demo
	$(PY) recipes/train_scorer.py --vlm models/tiny-demo --real_chats $(REAL_CHATS) --out outputs/default-scorer --export_dir models/tiny-demo

realchat-model: install ## only the text-scorer stage, on the committed VLM -> outputs/realchat-model (~50 min on 2 cores)
	$(PY) recipes/train_scorer.py --vlm models/tiny-demo --real_chats $(REAL_CHATS) --out outputs/realchat-run --export_dir outputs/realchat-model

ABLATION_SEEDS ?= 0 1 2
ablation: install ## the paper's ablation (SFT / +GRPO / +curriculum) over seeds, synthetic + real-chat dev (~15 min a seed)
	OMP_NUM_THREADS=1 $(PY) recipes/ablation.py --seeds $(ABLATION_SEEDS) --real_chats $(REAL_CHATS) --dev_limit 200 --update_results_md

sync-demo-code: install ## re-copy the Hub remote-code files into models/tiny-demo (a test checks they match)
	$(PY) -c "from f2rvlm.models.hub import write_remote_code; print(write_remote_code('models/tiny-demo'))"

SPACE_OUT ?= build/space
space-bundle: install ## a deployable Space folder in $(SPACE_OUT): app, package under vendor/, models/tiny-demo
	$(PY) scripts/space_bundle.py --out $(SPACE_OUT)

sample-exports: install ## rewrite the shipped sample chat exports (modeling/f2rvlm/assets/exports/)
	$(PY) scripts/make_sample_exports.py

lint: install ## ruff
	$(VENV)/bin/ruff check modeling recipes space hub_datasets benchmarks tests scripts

bench: install ## run the benchmarks and rewrite benchmarks/RESULTS.md
	$(PY) benchmarks/run_all.py

clean: ## remove build outputs (keeps .venv)
	rm -rf build dist *.egg-info outputs
