# Two commands do all the set-up (see README.md):
#   make run    create .venv, install the project, run the main job (a backtest with reports)
#   make test   install the test tools (and Debian's chromium for the browser test), run the suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test install browser lint bench

run: install
	$(VENV)/bin/btc-backtest run --out reports/latest

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[test]'
	touch $@

browser:
	bash scripts/install-chromium.sh

test: install browser
	$(PY) -m ruff check .
	$(PY) -m pytest -n auto

lint: install
	$(PY) -m ruff check .

# Every benchmark; bench_kernel_ab.py compares this tree with another checkout, so it runs only
# when one is given: make bench BASELINE=../baseline-checkout
bench: install
	for f in benchmarks/bench_*.py; do \
	  case $$f in *bench_kernel_ab.py) \
	    if [ -z "$(BASELINE)" ]; then echo "== $$f skipped (needs BASELINE=<checkout>)"; continue; fi; \
	    echo "== $$f"; PYTHONPATH=. $(PY) $$f --baseline "$(BASELINE)" || exit 1; continue;; \
	  esac; \
	  echo "== $$f"; PYTHONPATH=. $(PY) $$f || exit 1; \
	done
