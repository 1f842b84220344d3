# The single entry point. `make demo` and `make test` are the whole set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
# extra flags for `mirror-engine bench`, e.g. BENCH_ARGS='--record-size 100,1k,10k --records 1000000'
BENCH_ARGS ?=
# `make bench`: 1 KiB and 100 B, no compression, every row, one measured run after a warm-up, 5 s
# windows, p99 at half load for 1 KiB; estimated 23 min on 2 cores (the test of this line checks it)
BENCH_QUICK_ARGS := --record-size 1k,100 --compression none --runs 1 --window-seconds 5 --latency-record-size 1k --latency-seconds 10
# `make bench-full`: the whole matrix with 3 runs after a warm-up and 10 s windows, the latency curve,
# then the security rows; each part resumes where it stopped when rerun (same folder, same settings)
BENCH_FULL_OUT ?= benchmarks/results/full
BENCH_FULL_ARGS := --record-size 100,1k,10k --compression none,lz4 --latency-loads 25,50,75
BENCH_SECURITY_ARGS := --record-size 1k --compression none --security tls,mtls,sasl_ssl-scram --skip-latency

.PHONY: install wheel kafka known-keys config-docs demo lint test test-unit test-integration bench bench-full bench-sweep clean sandbox-down

$(STAMP): pyproject.toml setup.py engine/_fastpath.pyx engine/_fastpath.pxd engine/_librdkafka.pxd engine/_librdkafka.h \
         $(wildcard engine/fastpath/*.pyx engine/fastpath/*.pxd engine/fastpath/*.pxi) engine/bench/_floor.pyx
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,bench,lint]'
	touch $(STAMP)

install: $(STAMP)

# the engine for a replication host: a wheel with the compiled fast path, built by pip in an isolated
# build environment (setuptools and Cython fetched for the build only); install it with
# `pip install dist/mirror_engine-*.whl` (docs/operations.md)
DIST ?= dist
wheel: install
	rm -rf build/lib.* build/bdist.*  # a stale build/lib would carry deleted modules into the wheel
	$(PY) -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir $(DIST) .

# Apache Kafka 4.3.1 jars, fetched with Maven into .cache/ (git-ignored) once
kafka: install
	$(PY) -c "from engine.sandbox.distribution import *; kafka_libs(); kafka_libs(MIRROR_CLIENT_ARTIFACTS, 'mirror-client')"

# engine/config/known_keys.py: the key names of Kafka 4.3.1's config classes, read from the jars (needs a JDK)
known-keys: kafka
	cp=$$(ls $${MIRROR_ENGINE_CACHE:-.cache}/kafka-4.3.1/mirror-maker/*.jar | tr '\n' :); \
	java -cp "$$cp" tools/KnownKeys.java > engine/config/known_keys.py.new && mv engine/config/known_keys.py.new engine/config/known_keys.py

# docs/configuration.md's key reference, generated from the key table (engine/config/keys.py)
config-docs: install
	$(PY) -m engine.config.reference docs/configuration.md

demo: kafka
	$(PY) -m engine demo

# ruff over the Python, mypy over engine/, cython-lint over the Cython sources (settings in
# pyproject.toml); cython-lint runs pycodestyle from PATH
CYTHON_SOURCES = $(shell find engine -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi')
lint: install
	$(VENV)/bin/ruff check engine tests tools benchmarks
	$(VENV)/bin/mypy
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/cython-lint $(CYTHON_SOURCES)

# pytest's exit code 5 (no test collected) fails like any other
test: kafka
	@$(PY) -m pytest $(PYTEST_ARGS); code=$$?; \
	if [ $$code -eq 5 ]; then echo "make test: no test ran; failing" >&2; fi; exit $$code

test-unit: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

# the long fault runs: the target frozen for a minute instead of 15 s; the config-sync race 20 times;
# the kills mid-stream, the broker restarts and the kill during a scale-out hand-over three times each
soak: kafka
	MIRROR_ENGINE_SOAK=1 $(PY) -m pytest tests/integration/test_faults.py tests/integration/test_exactly_once.py \
		'tests/integration/test_config_and_acl_sync.py::test_an_excluded_setting_changed_right_after_creation_stays' \
		'tests/integration/test_scale_out.py::test_a_kill_during_a_hand_over_copies_nothing_twice' \
		-s $(PYTEST_ARGS)

test-integration: kafka
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

# fast-path micro-benchmarks, then the end-to-end comparison on two local clusters (the ceiling, the
# floor, Java MM2 4.3.1 at its defaults and tuned, the franz-go relay where Go is installed,
# mirror-engine's Python and C loops): at most 25 minutes on 2 cores; results and plots in
# benchmarks/results/<timestamp>/ (see benchmarks/README.md)
bench: kafka
	$(PY) -m pytest benchmarks -o python_files='bench_*.py' $(PYTEST_ARGS)
	$(PY) -m engine bench $(BENCH_QUICK_ARGS) $(BENCH_ARGS)

# the whole matrix (100 B, 1 KiB, 10 KiB x none, lz4), the latency curve, the security rows: hours;
# every finished run is kept in $(BENCH_FULL_OUT)/{matrix,security}/progress.jsonl, and a rerun resumes
bench-full: kafka
	$(PY) -m engine bench $(BENCH_FULL_ARGS) --out $(BENCH_FULL_OUT)/matrix $(BENCH_ARGS)
	$(PY) -m engine bench $(BENCH_SECURITY_ARGS) --out $(BENCH_FULL_OUT)/security $(BENCH_ARGS)

# capacity planning: mirror-engine (C loop) over partitions x workers x record size, and a sizing answer
bench-sweep: kafka
	$(PY) -m engine bench --sweep $(BENCH_ARGS)

sandbox-down: install
	$(PY) -m engine sandbox down

clean:
	rm -rf build dist *.egg-info engine/_fastpath.c engine/*.so engine/*.html .pytest_cache \
		engine/bench/_floor.c engine/bench/*.so engine/bench/*.html
