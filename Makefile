# One-command entry points. Each target creates .venv when missing, installs a pinned torch
# first (CPU wheel by default; override e.g. TORCH_SPEC="torch==2.13.0 --index-url ..." for CUDA),
# then the package with its dev and laplace extras, then laplace-torch and the two libraries of
# it that declare torchvision (which would pull another torch) without their declared
# dependencies: pyproject's `laplace` extra lists what they really import.
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
LAPLACE_SPEC ?= laplace-torch==0.3 backpack-for-pytorch==1.7.1 curvlinops-for-pytorch==3.0.1
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hvgp-installed

.PHONY: venv test test-all demo lint notebooks bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[dev,laplace]'
	$(PY) -m pip install -q --no-deps $(LAPLACE_SPEC)
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	MPLBACKEND=Agg $(PY) -m pytest -q

test-all: $(STAMP)
	MPLBACKEND=Agg $(PY) -m pytest -q -m ''

lint: $(STAMP)
	$(PY) -m ruff check hvgp tests benchmarks

demo: $(STAMP)
	MPLBACKEND=Agg $(PY) -m hvgp.demo

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
