# Sinter's everyday commands. `make help` lists them.
#
# CARGO_TARGET_DIR is honoured, so several clones can share one build cache.

CARGO ?= cargo
export SINTER_KAFKA_BROKERS ?= 127.0.0.1:9092

.PHONY: help dev cluster-up cluster-down example build test lint fmt services services-stop install-broker \
        install-protoc bench-bus crd

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 18

dev: install-protoc ## Build `sinter` and run `sinter dev` (DEV_ARGS passes flags).
	$(CARGO) run -q -p sinter-cli -- dev $(DEV_ARGS)

cluster-up: install-protoc install-broker ## Cluster mode: the four binaries on tansu and PostgreSQL.
	$(CARGO) build --workspace --bins
	scripts/cluster.sh up

cluster-down: ## Stop what `make cluster-up` started (the broker stays; `make services-stop`).
	scripts/cluster.sh down

example: install-protoc ## Build `sinter` and validate the example Solution with it.
	$(CARGO) run -q -p sinter-cli -- solution validate examples/pump-health.yaml

build: install-protoc ## Build every crate and binary.
	$(CARGO) build --workspace --all-targets

test: install-protoc install-broker services ## Start what the tests need, then run every test.
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast

crd: install-protoc ## Write the Solution CRD, generated from the operator's types, into the chart.
	$(CARGO) run -q -p sinter-operator -- crd > charts/sinter/crds/solutions.sinter.dev.yaml

lint: install-protoc ## rustfmt and clippy, warnings are errors.
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code.
	$(CARGO) fmt --all

services: ## Start the local services the tests need (the tansu broker).
	@scripts/broker.sh start

services-stop: ## Stop what `make services` started.
	@scripts/broker.sh stop

install-broker: ## Install the tansu broker into ~/.cargo/bin once (about 15 minutes).
	@command -v tansu >/dev/null || [ -x "$$HOME/.cargo/bin/tansu" ] || \
		$(CARGO) install tansu --locked --features dynostore,libsql

install-protoc: ## Install protoc from Debian when it is missing.
	@command -v protoc >/dev/null || { apt-get update -qq && \
		apt-get install -y -qq protobuf-compiler; }

bench-bus: services ## Throughput of the embedded and the Kafka bus, 200-byte records.
	$(CARGO) run --release -p sinter-cli -- bench bus --kafka $(SINTER_KAFKA_BROKERS)

.PHONY: chart-check
chart-check: ## Helm lint and template, and a kind or k3d install; a missing tool skips its step.
	@charts/sinter/ci/chart-check.sh
