# Sunshine Livelihood Assistance — the commands. `make help` lists them.
CARGO ?= cargo
LOCAL_DIR ?= .local
K8S_VENV ?= $(LOCAL_DIR)/venv-k8s
# Where cargo builds (the benchmarks' JSON goes to $(TARGET_DIR)/bench/).
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
# Extra options for sunshine-loadgen, e.g. E2E_ARGS="--mode cluster --no-search".
E2E_ARGS ?=
# Extra options for sunshine-payment-bench, e.g. PAYMENT_BENCH_ARGS="--entitlements 100000".
PAYMENT_BENCH_ARGS ?=
# Extra options for sunshine-integration-bench, e.g. INTEGRATION_BENCH_ARGS="--concurrency 4".
INTEGRATION_BENCH_ARGS ?=

.PHONY: help run run-cluster test lint fmt bench bench-eventlog bench-policy bench-e2e bench-payment bench-integration demo backends k8s-check clean-local

help:
	@echo "make run          run every service in one process (SQLite + in-process bus under $(LOCAL_DIR)/)"
	@echo "make run-cluster  migrate, then run every service in one process on PostgreSQL + NATS JetStream"
	@echo "make test         the k8s checks, then all tests against real PostgreSQL and NATS (started or installed if needed)"
	@echo "make lint         rustfmt --check and clippy -D warnings"
	@echo "make bench        every benchmark; JSON results under target/bench/ (bench-eventlog, bench-policy, bench-e2e, bench-payment, bench-integration alone)"
	@echo "make demo         start the system in-process and walk through it"
	@echo "make k8s-check    render and validate the Kubernetes manifests, and check who gets which log key"

run:
	$(CARGO) build -p sunshine
	./target/debug/sunshine dev-init $(LOCAL_DIR)
	@echo "tokens: ./target/debug/sunshine dev-token --role admin (for every service; --audience intake narrows it)"
	SUNSHINE_CONFIG=$(LOCAL_DIR)/sunshine.toml ./target/debug/sunshine serve all

run-cluster: backends
	$(CARGO) build -p sunshine
	./target/debug/sunshine dev-init $(LOCAL_DIR)
	psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname = 'sunshine'" | grep -q 1 \
		|| psql -h 127.0.0.1 -U postgres -c "create database sunshine"
	# The schema step, as in the cluster (there a Job runs it as the tables' owner).
	SUNSHINE_CONFIG=$(LOCAL_DIR)/sunshine.toml \
	SUNSHINE__DATABASE__URL=postgres://postgres@127.0.0.1:5432/sunshine \
		./target/debug/sunshine migrate
	@echo "run-cluster: trusting the DEVELOPMENT key on PostgreSQL (auth.allow_development_keys); never do this in production"
	SUNSHINE_CONFIG=$(LOCAL_DIR)/sunshine.toml \
	SUNSHINE__DATABASE__URL=postgres://postgres@127.0.0.1:5432/sunshine \
	SUNSHINE__BUS__URL=nats://127.0.0.1:4222 \
	SUNSHINE__AUTH__ALLOW_DEVELOPMENT_KEYS=true \
		./target/debug/sunshine serve all

backends:
	./deploy/local/ensure-backends.sh

# The Kubernetes manifests' checks run first (cheap). Here a check whose tool cannot be installed
# fails instead of being skipped (hadolint excepted): CI runs `make test`.
test: K8S_CHECK_REQUIRE = yamllint render validate keys
test: backends k8s-check
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast && $(CARGO) test --workspace --doc; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench: bench-eventlog bench-policy bench-e2e bench-payment bench-integration
	$(CARGO) bench -p sunshine-platform --bench foundation

bench-eventlog: backends
	$(CARGO) bench -p sunshine-eventlog --bench eventlog

bench-policy:
	$(CARGO) bench -p sunshine-policy --bench policy

# End to end from a separate load-generator process, cluster and embedded (docs/benchmarks.md).
bench-e2e: backends
	$(CARGO) build --release -p sunshine -p sunshine-loadgen
	$(TARGET_DIR)/release/sunshine-loadgen --sunshine $(TARGET_DIR)/release/sunshine \
		--output $(TARGET_DIR)/bench/e2e.json $(E2E_ARGS)

# A payment run over 1,000,000 generated entitlements, from a separate process (docs/benchmarks.md).
bench-payment: backends
	$(CARGO) build --release -p sunshine -p sunshine-loadgen
	$(TARGET_DIR)/release/sunshine-payment-bench --sunshine $(TARGET_DIR)/release/sunshine \
		--output $(TARGET_DIR)/bench/payment.json $(PAYMENT_BENCH_ARGS)

# PushAssistanceRecords of 100,000 records in batches of 1,000 from a separate process, beside
# the event log's batched append measured in the same run (docs/benchmarks.md).
bench-integration: backends
	$(CARGO) build --release -p sunshine -p sunshine-loadgen
	$(TARGET_DIR)/release/sunshine-integration-bench --sunshine $(TARGET_DIR)/release/sunshine \
		--output $(TARGET_DIR)/bench/integration.json $(INTEGRATION_BENCH_ARGS)

demo:
	$(CARGO) run -q -p sunshine -- demo

# K8S_CHECK_REQUIRE="render validate …": those steps fail, not skip, if their tool is missing.
k8s-check:
	$(if $(K8S_CHECK_REQUIRE),K8S_CHECK_REQUIRE="$(K8S_CHECK_REQUIRE)" )./deploy/k8s-check.sh $(K8S_VENV)

clean-local:
	rm -rf $(LOCAL_DIR)
