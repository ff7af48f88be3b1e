# Everything a fresh machine needs: `make demo` and `make test` create .venv themselves.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SOURCES := aigw tests benchmarks
ZIPAPP ?= dist/aigw.pyz

.PHONY: demo test test-postgres lint typecheck unit man bench zipapp clean chromium

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

unit: $(STAMP) chromium
	$(PY) -m pytest

# The tests that open the store, again on PostgreSQL ($$AIGW_TEST_POSTGRES; .ci/run
# runs this after `make test`). The rest do not depend on the backend.
test-postgres: $(STAMP)
	AIGW_TEST_STORE=postgres $(PY) -m pytest

# The dashboard's browser test drives Debian's chromium through Playwright (no browser
# download). Installed here when missing and we may (root with apt-get, as in CI);
# otherwise that test is skipped and says why.
CHROMIUM ?= /usr/bin/chromium
chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium for the dashboard's browser test (apt-get)"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq chromium >/dev/null) \
	      || echo "could not install chromium: the browser test will be skipped"; \
	  else \
	    echo "no $(CHROMIUM) (install chromium, or run as root with apt-get):" \
	      "the dashboard's browser test will be skipped"; \
	  fi; \
	fi

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
