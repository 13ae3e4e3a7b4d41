# The README's two commands: `make demo` and `make test`. Both run `make setup` first (idempotent).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ivfusion-setup

# No test or demo may reach the network: Ultralytics offline, settings kept inside the project.
export YOLO_OFFLINE := 1
export YOLO_CONFIG_DIR := $(CURDIR)/.yolo
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: setup demo test results clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-interfaces.txt setup.py scripts/build_interfaces.sh $(wildcard interfaces/vision_msgs/msg/*.msg)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	bash scripts/build_interfaces.sh $(VENV)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	mkdir -p $(YOLO_CONFIG_DIR)
	touch $@

demo: setup
	$(VENV)/bin/ivfusion demo $(ARGS)

test: setup
	$(PY) -m pytest -q tests $(ARGS)

# docs/results.md: every shared dataset, baselines + peers, metrics re-checked by the independent implementation.
results: setup
	$(VENV)/bin/ivfusion eval --verify --out outputs/eval --results-md docs/results.md $(ARGS)

clean:
	rm -rf build outputs .pytest_cache
