# make demo: create .venv if missing, install, run chip end to end on embedded servers (python -m demo).
# make test: create .venv if missing, install requirements, run the test suite.
# make run:  start chip with the configuration in the environment (CHIP_*; see python chip.py --help).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: demo test run clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(DEMO_STAMP): $(PY) requirements.txt requirements-demo.txt
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-demo.txt
	touch $(DEMO_STAMP)

$(STAMP): $(DEMO_STAMP) requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

demo: $(DEMO_STAMP)
	$(PY) -m demo $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

run: $(STAMP)
	$(PY) chip.py

clean:
	rm -rf $(VENV) .pytest_cache
