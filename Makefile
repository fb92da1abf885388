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

bench: $(VENV)/.dev
	$(PY) -m bench

# Mutation testing of the safety-critical modules against the fast tiers (not in CI; README "Development").
mutate: $(VENV)/.dev
	$(PY) tools/mutate.py

clean:
	rm -rf $(VENV) cdk.out layers/build bench/.work .pytest_cache .ruff_cache .mypy_cache .mutate
