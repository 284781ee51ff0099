# Two commands on a fresh machine (Python 3.11 and make are all it needs):
#   make run    set up, then train the proposed CNN on the built-in synthetic data via `mlflow run`
#   make test   set up, then run the test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The local tracking store: SQLite inside mlruns/, artifacts beside it.
export MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/mlruns/mlflow.db
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR ?= false
# The proposed CNN: on 2 CPU cores it learns the synthetic task (~70 %) in about 1.5 minutes.
# VGG-16 from scratch (`make run MODEL=vgg16`) costs 2.7x the FLOPs per image and needs many
# more steps: after 6 epochs on these 980 faces it was still at chance (14 %).
MODEL ?= cnn_torch

.PHONY: setup run test lint ui clean

setup: $(VENV)/.installed

# Reinstall whenever the pinned dependencies change.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# The MLproject calls `emorec`, so the venv's bin goes first on PATH.
run: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/mlflow run . -P model=$(MODEL) --env-manager local --experiment-name emorec-synthetic

test: setup lint
	$(BIN)/python -m pytest

# ruff's lint and format rules are in pyproject.toml; `ruff format` fixes the formatting.
lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# One uvicorn worker and no job runners: see docker/compose.yaml's tracking server.
ui: setup
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) \
	    --host 127.0.0.1 --port 5000 --workers 1

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
