# AppStack: `make demo` runs the product on the local cluster; `make test`
# runs every test (unit, golden, CRD drift, chart, e2e on the local cluster).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export APPSTACK_CACHE ?= $(HOME)/.cache/appstack
CARGO_TARGET_DIR ?= target
export CARGO_TARGET_DIR
CLUSTER ?= local
export CLUSTER
STEP = e2e/lib/step.sh

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

.PHONY: test
test: lint unit generated-check cluster-up images images-previous chart-check e2e ## everything CI runs

# The scripts the store images run (POSIX sh: Debian's dash runs them).
SCRIPTS = $(sort $(wildcard src/build/scripts/*.sh src/build/backup/*.sh))

.PHONY: lint
lint: ## rustfmt, clippy (warnings are errors), shellcheck of the scripts, actionlint of the workflows
	@$(STEP) "rustfmt" cargo fmt --all -- --check
	@$(STEP) "clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
	@$(MAKE) --no-print-directory shellcheck
	@$(STEP) "actionlint (release workflow)" e2e/lib/actionlint.sh

.PHONY: shellcheck
shellcheck: ## shellcheck every script the stores run, as POSIX sh
	@command -v shellcheck >/dev/null || { echo "shellcheck is not installed: apt-get install shellcheck (Debian, Ubuntu), brew install shellcheck (macOS), or see https://github.com/koalaman/shellcheck#installing" >&2; exit 1; }
	@$(STEP) "shellcheck" shellcheck --shell=sh --external-sources $(SCRIPTS)

.PHONY: unit
unit: ## unit and golden tests (no cluster needed)
	@$(STEP) "unit tests (operator)" cargo test --locked -p appstack
	@$(STEP) "unit + store tests (shop)" cargo test --locked -p appstack-shop
	@$(STEP) "chart alert rules (promtool check rules, test rules)" charts/rules-test.sh
	@$(STEP) "kind image step (fake kind, kubectl, build.sh)" e2e/images/load-current-test.sh

.PHONY: generate
generate: ## regenerate the CRD, the chart's CRD and deploy/ from the sources
	@cargo run --quiet --locked --bin appstack-operator -- crd > crds/appstack.dev_appstacks.yaml
	@charts/sync-crd.sh
	@charts/docs.sh

.PHONY: generated-check
generated-check: ## fail when generated files drift from their sources
	@$(STEP) "CRD drift" cargo test --locked -p appstack --test crd_drift
	@$(STEP) "chart CRD and deploy/ drift" charts/sync-crd.sh --check
	@$(STEP) "chart values table drift (helm-docs)" charts/docs.sh --check

.PHONY: build
build: ## release binaries of the operator, kubectl-appstack and the demo app
	@$(STEP) "cargo build --release" cargo build --release --locked -p appstack -p appstack-shop

.PHONY: cluster-up
cluster-up: ## start the local cluster (or check CLUSTER=current)
	@e2e/cluster.sh up
	@e2e/cluster.sh status

.PHONY: cluster-down
cluster-down: ## stop the local cluster
	@e2e/cluster.sh down

.PHONY: images
images: build ## build the operator and demo images and import them (CLUSTER=current: load them into kind)
ifeq ($(CLUSTER),current)
	@$(STEP) "images (archives for kind)" e2e/images/load-current.sh operator shop
else
	@$(STEP) "images" e2e/images/build.sh operator shop
endif

.PHONY: images-previous
images-previous: ## the previous release's operator image, for the upgrade scenario (built once)
	@$(STEP) "previous release image" e2e/images/build.sh operator-previous

.PHONY: chart-check
chart-check: ## helm lint and a server-side dry run of the rendered chart
	@$(STEP) "helm lint, RBAC and dry run" charts/test.sh --cluster

.PHONY: e2e
e2e: ## end-to-end scenarios on the cluster (kills pods, proves nothing is lost)
	@$(STEP) "e2e scenarios" cargo test --locked -p appstack-e2e --test scenarios -- --nocapture

# The story first: the cluster's parts the demo needs (no NetworkPolicy engine,
# metrics-server, S3 or older store images unless already built) while cargo
# builds the release binaries beside them; `make test` builds the rest.
.PHONY: demo
demo: ## run the product and play the story: kill pods, lose nothing
	@$(MAKE) --no-print-directory -j2 demo-cluster build
	@$(MAKE) --no-print-directory images
	@e2e/demo.sh

.PHONY: demo-cluster
demo-cluster: ## start the local cluster with only what the demo needs (or check CLUSTER=current)
	@e2e/cluster.sh up --demo
	@e2e/cluster.sh status

.PHONY: bench
bench: ## reconcile throughput and memory at scale, as ratios against a baseline
	@e2e/bench.sh
