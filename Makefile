# Two entry points for a newcomer on a fresh machine (see README):
#   make quickstart   the main job on the embedded synthetic default
#   make test         install everything (pinned torch) and run the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test quickstart

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[app,fid,forecast,fetch,ray,dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

quickstart: $(STAMP)
	$(VENV)/bin/solargen quickstart
