# Two commands for a fresh machine with Python 3.11:
#   make demo   installs gradcode and runs the main job
#   make test   installs gradcode with every extra and runs the whole test suite
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.demo: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[data,plots]"
	touch $@

$(VENV)/.test: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[data,plots,dev,jax,ray]" "torch==2.13.0"
	touch $@

demo: $(VENV)/.demo
	$(BIN)/gradcode compare

test: $(VENV)/.test
	$(BIN)/python -m pytest -q

bench: $(VENV)/.test
	for f in benchmarks/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV)
