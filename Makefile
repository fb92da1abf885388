# modelrail: every target sets up .venv itself from the pinned requirements.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: demo test lint bench synth serve clean load mutate

# uv installs the pinned requirements into the venv in seconds where pip takes a minute and a half.
UV := $(VENV)/bin/uv pip install -q --python $(PY)

$(VENV)/.runtime: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q uv==0.9.30
	$(UV) -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(UV) -r requirements-dev.txt
	touch $@

demo: $(VENV)/.runtime
	$(PY) -m modelrail rehearse --report rehearsal-report.json

serve: $(VENV)/.runtime
	$(PY) -m modelrail serve models/iris

# A short open-loop load on the sample, served locally as `serve` does: load-report.json and load-report.png.
load: $(VENV)/.runtime
	$(PY) -m modelrail load --local models/iris --rps 50 --duration 10 --report load-report.json --png load-report.png

test: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest

lint: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

synth: $(VENV)/.dev
	$(PY) app.py

# The benchmark's function processes run on CPython 3.12, as Lambda runs the functions (pyenv's, or python3.12 on the
# PATH), from a venv of their own with the same pinned requirements; without a 3.12 they run on .venv's Python.
LAMBDA_PYTHON ?= $(firstword $(wildcard $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions/3.12*/bin/python3.12) \
	$(shell command -v python3.12))
LAMBDA_VENV := .venv-lambda

$(LAMBDA_VENV)/.runtime: requirements.txt $(VENV)/.runtime
	$(VENV)/bin/uv venv -q --python $(LAMBDA_PYTHON) $(LAMBDA_VENV)
	$(VENV)/bin/uv pip install -q --python $(LAMBDA_VENV)/bin/python -r requirements.txt
	touch $@

bench: $(VENV)/.dev $(if $(LAMBDA_PYTHON),$(LAMBDA_VENV)/.runtime)
	$(PY) -m bench $(if $(LAMBDA_PYTHON),--python $(LAMBDA_VENV)/bin/python)

# Mutation testing of the safety-critical modules against the fast tiers (not in CI; README "Development").
mutate: $(VENV)/.dev
	$(PY) tools/mutate.py

clean:
	rm -rf $(VENV) $(LAMBDA_VENV) cdk.out layers/build bench/.work .pytest_cache .ruff_cache .mypy_cache .mutate
