# Two commands a newcomer needs:  make demo   and   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install system-deps demo demo-chaos quickstart lint test unit integration kafka-up kafka-down bench clean

install: $(STAMP)

$(STAMP): pyproject.toml deploy/compose-schema/package-lock.json deploy/dashboard/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	npm ci --prefix deploy/compose-schema --no-audit --no-fund --loglevel=error  # the Compose spec's JSON Schema
	npm ci --prefix deploy/dashboard --no-audit --no-fund --loglevel=error  # uPlot, for the dashboard and reports
	touch $(STAMP)

## The walk-through (shared/seed's chapter, sections 3 and 8): the sandbox (ESR server + sample
## DOL claims system), then the chapter's two scripts as written, at warp 1440 instead of 60
## (ESR_TIME_WARP, printed): the dashboard URL first, the verdict PASS last, in about three minutes.
demo: install
	$(BIN)/python examples/walkthrough.py

## The chapter's FAQ on chaos testing: the same day with db_down@hour12; the verdict says why it fails.
demo-chaos: install
	$(BIN)/python examples/walkthrough.py --chaos

## The smaller offline example: a bundled scenario against the bundled demo target.
quickstart: install
	$(BIN)/esr demo

## System packages the tests use, from Debian (run as root, as .ci/run does): the broker's
## Java and Maven, kcat, a Kafka client written by others that one test reads verdicts with,
## Prometheus, which a test scrapes GET /metrics with (on a port of its own; the package's
## service is not needed), Chromium, the headless browser of the dashboard tests, and the CA
## bundle a TLS settings test loads.
system-deps:
	@missing=""; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v kcat >/dev/null || missing="$$missing kcat"; \
	test -x /usr/bin/prometheus || missing="$$missing prometheus"; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	test -f /etc/ssl/certs/ca-certificates.crt || missing="$$missing ca-certificates"; \
	if [ -n "$$missing" ]; then apt-get update -qq && apt-get install -y -qq $$missing; fi

## The contracts CI checks beside the tests (docs/architecture.md): ruff (style, bug patterns, no
## private members of other objects, no blind excepts), mypy (strict on esr/core) and import-linter
## (layers point down, no import circles). Seconds, not minutes.
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

## The whole test suite (unit + integration on loopback), with a throw-away Apache Kafka
## broker (deploy/kafka: jars from Maven Central, needs Java 17+ and Maven) for the Kafka tests.
## Three worker processes, each taking whole test files (module fixtures such as the 3-broker
## cluster stay in one process); most of the suite waits on real time, so three share two cores
## (about 7 minutes on two idle cores; 9 with two workers, 14 to 18 serially).
test: install
	deploy/kafka/with-broker.sh $(BIN)/python -m pytest -n 3 --dist loadfile

unit: install
	$(BIN)/python -m pytest tests/unit

integration: install
	deploy/kafka/with-broker.sh $(BIN)/python -m pytest tests/integration

## A local broker on 127.0.0.1:9092 for trying the Kafka runtime (data in .kafka/; stop with kafka-down).
kafka-up:
	deploy/kafka/kafka.sh start .kafka 9092

kafka-down:
	deploy/kafka/kafka.sh stop .kafka

## Benchmarks beside their peers (needs nginx and hey from Debian, and the Kafka broker's Java and
## Maven; see benchmarks/README.md).
bench: install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/bench_fold.py
	$(BIN)/python benchmarks/bench_fidelity.py
	$(BIN)/python benchmarks/bench_rate.py
	deploy/kafka/with-broker.sh $(BIN)/python benchmarks/bench_kafka.py
	$(BIN)/python benchmarks/bench_replay.py
	$(BIN)/python benchmarks/bench_fault_proxy.py
	$(BIN)/python benchmarks/bench_dashboard.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis .kafka deploy/kafka/lib
