# make demo: create .venv if missing, install, run chip end to end on embedded servers (python -m demo).
# make test: create .venv if missing, install requirements, run the test suite.
# make run:  start chip with the configuration in the environment (CHIP_*; see python chip.py --help).
# make install-prod: .venv with the runtime requirements only, the hash-checked versions of requirements.lock
#   (what make run uses; README "Deploying").
# make lint: ruff's checks and its formatting check (CI runs it before the tests).
# make lock: recompile requirements.lock from pyproject.toml (README "Upgrading a dependency").
# make bench / make bench-quick: chip against a minimal Tornado baseline on loopback (BENCHMARKS.md); make bench-soak: RSS over time;
#   BENCH_ARGS="--topology cluster" (or sentinel) runs it on a Redis Cluster (Sentinel) the benchmark starts.
# make hosts-example: as root, three chip hosts in network namespaces sharing a Redis Cluster, one cut off (deploy/hosts).
# make mutate: plant known bugs one at a time in a copy of the tree and print the tests' kill rate (TESTING.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
PROD_STAMP := $(VENV)/.installed-prod

BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: demo test lint lock run install-prod bench bench-quick bench-soak mutate hosts-example clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# exact versions whose files must match the lock's hashes: a production venv gets what was tested
$(PROD_STAMP): $(PY) requirements.lock
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	touch $(PROD_STAMP)

install-prod: $(PROD_STAMP)

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

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# every platform's files, with their hashes, of the releases pyproject.toml admits: those already in the
# lock stay unless LOCK_ARGS says otherwise (--upgrade-package NAME, or --upgrade for all)
lock: $(STAMP)
	$(PY) -m uv pip compile pyproject.toml --generate-hashes --universal --python-version 3.11 \
		--quiet -o requirements.lock $(LOCK_ARGS)

run: $(PROD_STAMP)
	$(PY) chip.py

$(BENCH_STAMP): $(STAMP) requirements-bench.txt
	$(PY) -m pip install --quiet -r requirements-bench.txt
	touch $(BENCH_STAMP)

# about 3 minutes; BENCH_ARGS passes options (python -m bench --help)
bench: $(BENCH_STAMP)
	$(PY) -m bench $(BENCH_ARGS)

# about a minute: shorter steps, fewer sockets
bench-quick: $(BENCH_STAMP)
	$(PY) -m bench --quick $(BENCH_ARGS)

# about 13 minutes: chip's RSS over 15 rounds of 300 msg/s, every visitor reconnecting each round
bench-soak: $(BENCH_STAMP)
	$(PY) -m bench --parts soak $(BENCH_ARGS)

# about 10 minutes, one mutant at a time; MUTATE_ARGS passes options (python -m tests.mutation --help)
mutate: $(STAMP)
	$(PY) -m tests.mutation $(MUTATE_ARGS)

# about a minute, needs root: deploy/hosts/hosts.sh up makes namespaces chip-h1..3 (10.77.0.1-3) on
# bridge chip-br0 (10.77.0.254); chip runs in each (ip netns exec chip-hN chip.py --address 10.77.0.N);
# the test cuts chip-h2's link and hosts.sh down removes it all (skipped, saying why, without root)
hosts-example: $(STAMP)
	$(PY) -m pytest tests/deploy/test_hosts.py -rs $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache

# make widget: rebuild widget/dist from widget/src and widget/i18n (needs Node; dist/ is committed).
.PHONY: widget
widget:
	cd widget && npm ci --no-audit --no-fund && npm run build
