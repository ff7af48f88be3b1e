# Everything a fresh machine needs: `make demo` and `make test` create .venv themselves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SOURCES := aigw tests benchmarks
ZIPAPP ?= dist/aigw.pyz

.PHONY: demo test lint typecheck unit man bench zipapp clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/aigw demo

test: lint typecheck unit

lint: $(STAMP)
	$(PY) -m ruff check $(SOURCES)
	$(PY) -m ruff format --check $(SOURCES)

typecheck: $(STAMP)
	$(PY) -m mypy

unit: $(STAMP)
	$(PY) -m pytest

man: $(STAMP)
	$(VENV)/bin/aigw man > man/aigw.1

# One file with aigw and its dependencies (shiv): `./dist/aigw.pyz serve`. Needs
# Python 3.11+ on the target; built for this platform (its wheels are native).
zipapp: $(STAMP)
	mkdir -p $(dir $(ZIPAPP))
	$(VENV)/bin/shiv --compressed --reproducible --console-script aigw \
		--python '/usr/bin/env python3' --output-file $(ZIPAPP) .

bench: $(STAMP)
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache dist
