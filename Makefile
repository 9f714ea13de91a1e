# Two set-up commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: demo test lint install study daily notebooks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ue demo

lint: $(STAMP)
	$(BIN)/ruff check ue unified_embedding pipelines serving protos tests benchmarks notebooks
	$(BIN)/ruff format --check ue unified_embedding pipelines serving protos tests benchmarks notebooks/build.py
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache  # the layers of the house (pyproject.toml)

test: lint
	$(BIN)/pytest

# The embedding-budget study at full size (figures, runs.csv, summary.json in $(STUDY_DIR)/).
# Smaller: make study STUDY_ARGS="-p rows 30000 -y 'real_seeds: [0]'"  (lists and dicts: -y YAML)
# Your data: make study STUDY_ARGS="-y 'datasets: [{name: mine, path: data/*.csv.gz, schema: mine.json}]'"
STUDY_DIR ?= study
STUDY_ARGS ?=
study: $(STAMP)
	mkdir -p $(STUDY_DIR)
	PYTHONPATH=$(CURDIR) $(BIN)/papermill notebooks/02_embedding_budget.ipynb \
		$(STUDY_DIR)/02_embedding_budget.ipynb -k python3 --cwd $(CURDIR) \
		-p output_dir $(STUDY_DIR) $(STUDY_ARGS) --log-output --no-progress-bar

# The daily benchmark (frozen / retrained / warm-started per layout, next-day metrics) and its
# figures: notebook 04 into $(DAILY_DIR)/. About 80 minutes on 2 shared cores at its defaults.
# Smaller: make daily DAILY_ARGS="-p days 3 -p rows 5000"; from a recorded line:
# make daily DAILY_ARGS="-p result_file benchmarks/results/daily.jsonl"
DAILY_DIR ?= out/daily
DAILY_ARGS ?=
daily: $(STAMP)
	mkdir -p $(DAILY_DIR)
	PYTHONPATH=$(CURDIR) $(BIN)/papermill notebooks/04_daily.ipynb \
		$(DAILY_DIR)/04_daily.ipynb -k python3 --cwd $(CURDIR) \
		-p output_dir $(DAILY_DIR) $(DAILY_ARGS) --log-output --no-progress-bar

# Rewrite notebooks/*.ipynb (outputs cleared) from notebooks/build.py.
notebooks: $(STAMP)
	$(BIN)/python notebooks/build.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
