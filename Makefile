# Set-up and the everyday verbs. Every target installs what it needs into .venv first.
#   make reproduce   run every notebook headless on the embedded defaults -> reports/
#   make test        lint, unit tests, then nbval over notebooks/
#   make lab         JupyterLab on the notebooks
#   make bench       the benchmarks in benchmarks/ (installs PyTorch as the peer)
#   make notebooks   re-execute the stored notebooks in place (after a library change)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
JOBS   ?= 2

.PHONY: install test lint unit nbval reproduce lab bench notebooks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test,lab]"
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check lnedu tests benchmarks

unit: install
	$(BIN)/python -m pytest -q -n $(JOBS) tests

# experiment notebooks run their tiny preset under nbval (the stored outputs come from the small preset;
# the cells that differ are marked NBVAL_IGNORE_OUTPUT and check their claims with asserts)
nbval: install
	rm -rf .nbval-runs
	LNEDU_PRESET=tiny LNEDU_RUNS=$(CURDIR)/.nbval-runs $(BIN)/python -m pytest -q -n $(JOBS) --nbval --nbval-current-env -p no:cacheprovider notebooks

test: lint unit nbval

reproduce: install
	$(BIN)/python -m lnedu reproduce --out reports --runs runs

lab: install
	$(BIN)/jupyter lab notebooks/00-index.ipynb

bench: install
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/bench_norms.py

notebooks: install
	$(BIN)/python -m lnedu notebooks --execute-in-place

clean:
	rm -rf $(VENV) reports runs .nbval-runs .pytest_cache
