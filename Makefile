# Set-up and the everyday verbs. Every target installs what it needs into .venv first.
#   make reproduce   run every notebook headless on the embedded defaults -> reports/ (JOBS at a time)
#                    (PRESET=medium: the half-hour runs of every experiment -> reports-medium/)
#   make test        lint, unit tests, then nbval over notebooks/ beside the browser tests (tests/browser)
#   make lab         JupyterLab on the notebooks
#   make bench       the benchmarks in benchmarks/ (installs PyTorch as the peer); make bench-gpu on a GPU machine
#   make notebooks   re-execute the stored notebooks in place (after a library change), rebuild the exercise sheets
#   make binder      rebuild the Binder environment locally (.binder-venv) and open JupyterLab from it
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
JOBS   ?= 2
# one BLAS thread per process: the test runners already use both cores (-n 2), and on 2 cores a
# multi-threaded BLAS on small matrices spends its time fighting for them (10x slower, measured); likewise
# Numba's kernels (a descheduled pool thread stalls a call for milliseconds)
SERIAL := OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1

.PHONY: install test lint unit nbval browser browser-deps binder binder-lock colab reproduce lab bench bench-gpu notebooks clean mutation mutation-experiments

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test,lab,gpu,fast,cluster]"
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check lnedu tests benchmarks notebooks

# -p tests.file_timing: the summary lists the slowest test files (where the run's time goes; --file-times N)
unit: install
	$(SERIAL) $(BIN)/python -m pytest -q -n $(JOBS) -m "not browser" -p tests.file_timing tests

# experiment notebooks run their tiny preset under nbval (the stored outputs come from the small preset;
# the cells that differ are marked NBVAL_IGNORE_OUTPUT and check their claims with asserts). Only the
# teaching notebooks: the exercise sheets in notebooks/exercises/ are stored unexecuted, with stubs
nbval: install
	rm -rf .nbval-runs
	$(SERIAL) LNEDU_PRESET=tiny LNEDU_RUNS=$(CURDIR)/.nbval-runs $(BIN)/python -m pytest -q -n $(JOBS) --dist loadscope --nbval --nbval-current-env -p no:cacheprovider -p tests.nbval_timing notebooks/*.ipynb

# the browser tests: JupyterLab driven by headless Chromium (Debian's package, installed by browser-deps),
# and the reproduce report opened in it; skipped, with the reason, where Chromium cannot run
browser-deps:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends chromium) || \
	  echo "browser-deps: could not install chromium with apt (needs root); the browser tests will be skipped"

browser: install browser-deps
	$(SERIAL) $(BIN)/python -m pytest -q -p no:cacheprovider -m browser tests/browser

# nbval and the browser tests side by side: the browser suite leaves most of a core idle (JupyterLab and Chromium
# wait on each other: 32 s of CPU in 45 s, measured), so it runs beside nbval's two workers. -O prints each
# one's output together when it ends (the exit status is a failure if either fails)
test: lint unit
	@echo "nbval and the browser tests run side by side; each prints its report when it ends"
	@$(MAKE) --no-print-directory -j2 -O nbval browser

PRESET  ?= small
REPORTS ?= reports$(if $(filter-out small,$(PRESET)),-$(PRESET))
reproduce: install
	$(SERIAL) $(BIN)/python -m lnedu reproduce --out $(REPORTS) --runs runs --preset $(PRESET) --jobs $(JOBS)

lab: install
	$(BIN)/jupyter lab notebooks/00-index.ipynb

# [bench] pins PyTorch to a CUDA 12 build (pyproject.toml says why); the check stops a CUDA 13 one, which would
# put a second NVRTC beside CuPy's in this venv
TORCH_CUDA_CHECK := import torch; c = torch.version.cuda; assert c is None or c.startswith("12."), \
  f"torch {torch.__version__} is built for CUDA {c}; lnedu[gpu] (CuPy, NVRTC) is CUDA 12: pip install -e .[bench]"
bench: install
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python -c '$(TORCH_CUDA_CHECK)'
	$(BIN)/python benchmarks/bench_norms.py
	$(BIN)/python benchmarks/bench_rnn.py

# on a machine with an NVIDIA GPU: fused kernels vs the portable CuPy code vs PyTorch (exits 2 without a GPU)
bench-gpu: install
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python -c '$(TORCH_CUDA_CHECK)'
	$(BIN)/python benchmarks/bench_gpu.py

# Mutation testing (mutmut; installed here only, never in CI) over lnedu/functional, theory/invariance.py and
# gradcheck.py, with the test files listed in pyproject.toml's [tool.mutmut]. It runs in a copy of the tracked
# files, so its mutants/ folder never lands in the repository. MUTATE narrows it to some mutants by name, e.g.
#   make mutation MUTATE='lnedu.gradcheck*'        (then: cd $(MUTATION_DIR) && mutmut show NAME)
MUTATION_DIR ?= $(or $(TMPDIR),/tmp)/lnedu-mutation
MUTATE       ?=
mutation: install
	$(BIN)/python -m pip install -q "mutmut>=3.8,<4"
	rm -rf $(MUTATION_DIR) && mkdir -p $(MUTATION_DIR)
	git ls-files -z --cached --others --exclude-standard | \
	  xargs -0 -I{} sh -c 'test ! -e "$$1" || cp --parents "$$1" "$$2"' _ {} $(MUTATION_DIR)
	cd $(MUTATION_DIR) && $(SERIAL) PATH="$(CURDIR)/$(BIN):$$PATH" mutmut run --max-children $(JOBS) $(MUTATE)
	cd $(MUTATION_DIR) && PATH="$(CURDIR)/$(BIN):$$PATH" mutmut results

# The same over the experiment layer (issue 19 item 9): runner.py, verdicts.py and every experiment module, with the
# tests listed in tests/mutmut-experiments.toml (put in place of pyproject.toml's mutmut table in the copy). Slow
# (each mutant trains tiny runs): bound it, e.g.
#   make mutation-experiments MUTATE='lnedu.experiments.mnist_mlp*' MUTATION_TIMEOUT=1200
MUTATION_TIMEOUT ?= 7200
mutation-experiments: install
	$(BIN)/python -m pip install -q "mutmut>=3.8,<4"
	rm -rf $(MUTATION_DIR)-experiments && mkdir -p $(MUTATION_DIR)-experiments
	git ls-files -z --cached --others --exclude-standard | \
	  xargs -0 -I{} sh -c 'test ! -e "$$1" || cp --parents "$$1" "$$2"' _ {} $(MUTATION_DIR)-experiments
	cd $(MUTATION_DIR)-experiments && $(CURDIR)/$(BIN)/python -c 'import re, pathlib as p; \
	  t = p.Path("tests/mutmut-experiments.toml").read_text(); t = t[t.index("\n[tool.mutmut]\n") + 1:]; \
	  f = p.Path("pyproject.toml"); \
	  f.write_text(re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", lambda m: t.rstrip() + "\n\n", f.read_text()))'
	cd $(MUTATION_DIR)-experiments && $(SERIAL) PATH="$(CURDIR)/$(BIN):$$PATH" \
	  timeout $(MUTATION_TIMEOUT) mutmut run --max-children $(JOBS) $(MUTATE) || true
	cd $(MUTATION_DIR)-experiments && PATH="$(CURDIR)/$(BIN):$$PATH" mutmut results

notebooks: install
	$(SERIAL) $(BIN)/python -m lnedu notebooks --execute-in-place
	$(BIN)/python -m lnedu exercises build

# What mybinder.org does with binder/, as closely as this machine allows: a fresh environment from the pinned
# requirements, then postBuild, then JupyterLab on the index. BINDER_CHECK=1 only builds and checks.
BINDER_VENV   ?= .binder-venv
BINDER_PYTHON ?= $(shell command -v python$(shell sed -n 's/^python-//p' binder/runtime.txt) || echo $(PYTHON))
binder:
	rm -rf $(BINDER_VENV)
	$(BINDER_PYTHON) -m venv $(BINDER_VENV)
	$(BINDER_VENV)/bin/python -m pip install -q --upgrade pip
	$(BINDER_VENV)/bin/python -m pip install -q -r binder/requirements.txt
	PATH="$(CURDIR)/$(BINDER_VENV)/bin:$$PATH" binder/postBuild
	$(BINDER_VENV)/bin/python -c "import sys, lnedu, ipywidgets; print('binder: Python', sys.version.split()[0], \
	  '| lnedu', lnedu.__version__, '| ipywidgets', ipywidgets.__version__)"
	$(BINDER_VENV)/bin/jupyter labextension list 2>&1 | grep -E "@jupyter-widgets/jupyterlab-manager .*enabled.*OK" \
	  || (echo "binder: the ipywidgets extension is not enabled in JupyterLab"; exit 1)
	@if [ "$(BINDER_CHECK)" != 1 ]; then \
	  $(BINDER_VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/00-index.ipynb; fi

# Binder's full lock: every package of the core and [lab] dependencies (what a student's JupyterLab needs; not
# [test] or [bench]) pinned for Binder's Python (binder/runtime.txt) on Linux, by uv from pyproject.toml. Run it
# after changing those dependencies and before tagging a release (tests/test_binder_lock.py says when it is due).
BINDER_LOCK_PY = $(shell sed -n 's/^python-//p' binder/runtime.txt)
binder-lock: install
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --extra lab --python-version $(BINDER_LOCK_PY) \
	  --python-platform x86_64-manylinux_2_28 -q -o binder/requirements.txt

# Colab: the guarded install cell (and the GPU runtime for notebook 14) in every teaching notebook
# (lnedu.colab; a second run changes nothing); re-execute them afterwards with `make notebooks`
colab: install
	$(BIN)/python -m lnedu.colab $(wildcard notebooks/[0-9][0-9]-*.ipynb)

clean:
	rm -rf $(VENV) reports runs .nbval-runs .pytest_cache $(BINDER_VENV) tests/browser/artifacts
