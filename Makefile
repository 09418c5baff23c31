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

nbval: install
	$(BIN)/python -m pytest -q -n $(JOBS) --nbval --nbval-current-env -p no:cacheprovider notebooks

test: lint unit nbval

reproduce: install
	$(BIN)/python -m lnedu reproduce --out reports

lab: install
	$(BIN)/jupyter lab notebooks/00-index.ipynb

bench: install
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/bench_norms.py

notebooks: install
	$(BIN)/python -m lnedu notebooks --execute-in-place

clean:
	rm -rf $(VENV) reports .pytest_cache
