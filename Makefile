# Two commands for a fresh machine with Python 3.11 or newer:
#   make demo   installs gradcode and runs the main job
#   make test   installs gradcode with every extra and runs the whole test suite
#               (which also builds the documentation site in strict mode)
# PY: python3.11 if present, else python3.13, python3.12, else python3 if it is >= 3.11.
ifndef PY
PY := $(firstword $(foreach p,python3.11 python3.13 python3.12 python3,\
        $(shell $(p) -c 'import sys; print(sys.version_info >= (3, 11))' 2>/dev/null \
                | grep -qx True && echo $(p))))
endif
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench docs gallery clean

$(BIN)/python:
	@test -n "$(PY)" || { echo "make: no Python >= 3.11 found; use make PY=/path/to/python3.11"; exit 2; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.demo: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[data,plots]"
	touch $@

$(VENV)/.test: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[data,plots,dev,docs,jax,ray]" "torch==2.13.0"
	touch $@

demo: $(VENV)/.demo
	$(BIN)/gradcode compare

test: $(VENV)/.test
	$(BIN)/python -m pytest -q

$(VENV)/.docs: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[docs,data,plots]"
	touch $@

# the site, into site/ (open site/index.html); strict: any warning fails
docs: $(VENV)/.docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# every gallery script (examples/papers/): figures and pages under docs/gallery/
gallery: $(VENV)/.demo
	for f in examples/papers/[!_]*.py; do $(BIN)/python $$f || exit 1; done

bench: $(VENV)/.test
	for f in benchmarks/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) site
