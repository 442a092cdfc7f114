# restic-monitor — entry points. Go is the only prerequisite; everything else is fetched and
# built into bin/ (ignored, and reused across runs).

SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
RESTIC_VERSION := v0.18.1
STATICCHECK_VERSION := v0.6.1

export AWS_ENDPOINT_URL ?= http://127.0.0.1:4566
export RESTIC_BIN := $(BIN)/restic

.PHONY: all test test-unit test-web dev dev-reset restic emulator lint bench tools web web-size

all: test

## test: every test, with the emulator started when nothing answers at AWS_ENDPOINT_URL; the
## dashboard is built first (rm-dev embeds it and the browser test drives it)
test: restic emulator web
	$(MAKE) test-web
	RM_REQUIRE_AWS=1 scripts/with-emulator $(GO) test -count=1 ./...
	$(MAKE) test-infra

## test-web: the dashboard's unit and component tests (Vitest)
test-web: web/node_modules/.package-lock.json
	cd web && npm test

## web: the dashboard (npm ci from the lockfile, type check, vite build into web/dist/app)
web: web/node_modules/.package-lock.json
	cd web && npm run build

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund

## web-size: the gzipped size of the dashboard's first-load JavaScript (docs/benchmarks.md)
web-size: web
	cd web && npm run size

## test-unit: the tests that need nothing but Go
test-unit:
	$(GO) test -short ./...

## dev: the whole system on this machine: the emulator (unless AWS_ENDPOINT_URL answers), both
## APIs on 127.0.0.1:8080, the scheduler ticking every minute, the notifier reading the bus
## through a queue, and one agent backing up a demo folder with restic. State lives in .data/ and survives a restart; make dev-reset clears it.
dev: restic emulator web
	@echo "==> building the agent and the dev stack"
	@$(AGENT_BUILD) -o $(BIN)/restic-monitor-agent ./agent/cmd/restic-monitor-agent
	@$(GO) build -o $(BIN)/rm-dev ./cmd/rm-dev
	@mkdir -p .data/emulator
	@KUMO_DATA_DIR=$(CURDIR)/.data/emulator EMULATOR_LOG=$(CURDIR)/.data/emulator.log scripts/with-emulator $(BIN)/rm-dev

## dev-reset: forget everything make dev stored
dev-reset:
	rm -rf .data

## restic: build restic $(RESTIC_VERSION) into bin/ once
restic: $(BIN)/.restic-$(RESTIC_VERSION)

$(BIN)/.restic-$(RESTIC_VERSION):
	@mkdir -p $(BIN)
	GOBIN=$(BIN) $(GO) install github.com/restic/restic/cmd/restic@$(RESTIC_VERSION)
	@touch $@

## emulator: build the embedded AWS emulator launcher
emulator: $(BIN)/emulator

$(BIN)/emulator: localstack/emulator/main.go localstack/emulator/go.mod localstack/emulator/go.sum
	@mkdir -p $(BIN)
	cd localstack/emulator && $(GO) build -o $(BIN)/emulator .

## lint: vet, gofmt and staticcheck
lint:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

## bench: benchmarks against the endpoint (the emulator starts as for make test). The scheduler
## benchmark seeds fleets of 1,000 and 10,000 agents and prints requests per dispatched task and
## tick wall time; the overview benchmark prints the requests and latency of one tenant's
## overview at 100 and 10,000 agents; the tenant-deletion benchmark prints items removed per
## second and requests per item; the events benchmark prints the events per second the tick's
## outbox publisher sends to the bus and its PutEvents requests; the agent benchmark prints binary sizes, idle RSS and CPU, and
## the backup wall-time ratio against restic alone, the listing benchmark the ls task's time, the
## bytes a 100,000-file listing stores and the tree API's page latency, and web-size the
## dashboard's first-load JavaScript (docs/benchmarks.md). It takes minutes and is
## never part of make test.
bench: emulator web-size
	scripts/with-emulator $(GO) run ./internal/scheduler/cmd/schedbench -fleets 1000,10000 -due 0.1
	scripts/with-emulator $(GO) run ./internal/fleet/cmd/overviewbench -fleets 100,10000
	scripts/with-emulator $(GO) test ./internal/fleet/ -run '^$$' -bench DeleteTenant -benchtime 1x
	scripts/with-emulator $(GO) run ./internal/scheduler/cmd/outboxbench -events 10000
	agent/bench/run.sh

# ---- deployment (infra/, a CDK app in Go) --------------------------------------------------

.PHONY: build synth deploy diff test-infra

LAMBDAS := api agentapi authorizer scheduler notifier
LAMBDA_GOFLAGS := -tags lambda.norpc -trimpath -ldflags "-s -w"

## build: each Lambda whose main exists in functions/<name> into bin/lambda/<name>/bootstrap (linux/arm64)
build:
	@set -e; for fn in $(LAMBDAS); do \
	  if [ -d functions/$$fn ]; then \
	    echo "build functions/$$fn -> bin/lambda/$$fn/bootstrap"; \
	    GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build $(LAMBDA_GOFLAGS) -o $(BIN)/lambda/$$fn/bootstrap ./functions/$$fn; \
	  else \
	    echo "build: functions/$$fn does not exist yet, skipped"; \
	  fi; \
	done

# The CDK's Go packages drive a Node.js process (jsii), which needs a writable HOME and an
# existing TMPDIR; its package cache and the CDK CLI's state live in bin/. STAGE, TENANT and
# AWS_REGION select the deployment (infra/controlplane/config.go lists every setting).
INFRA_ENV = HOME="$$( [ -w "$${HOME:-/nonexistent}" ] && echo "$$HOME" || { mkdir -p $(BIN)/home && echo $(BIN)/home; } )" \
	TMPDIR="$$(mkdir -p "$${TMPDIR:-/tmp}" && echo "$${TMPDIR:-/tmp}")" \
	JSII_RUNTIME_PACKAGE_CACHE_ROOT=$(BIN)/jsii-cache \
	JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 \
	CDK_HOME=$(BIN)/cdk-home CDK_DISABLE_CLI_TELEMETRY=true \
	$(if $(STAGE),RM_STAGE=$(STAGE)) $(if $(TENANT),RM_TENANT=$(TENANT))

# This Makefile points AWS_ENDPOINT_URL at the local emulator for the tests; a deployment goes to
# AWS unless the caller set it (to LocalStack, say) in the environment.
CLOUD_ENV = $(if $(filter file,$(origin AWS_ENDPOINT_URL)),env -u AWS_ENDPOINT_URL)

## synth: the stack's template into infra/cdk.out and a copy for `sam deploy` into infra/sam.out — offline, no credentials
synth: build
	cd infra && $(INFRA_ENV) CDK_OUTDIR=cdk.out RM_SAM_OUTDIR=sam.out $(GO) run .

## deploy: cdk deploy (STAGE=, TENANT=; needs credentials and a bootstrapped account, see docs/deploy.md),
## then the dashboard's build into the bucket of every stack deployed
deploy: build web infra/node_modules/.package-lock.json
	cd infra && $(CLOUD_ENV) $(INFRA_ENV) npx --no-install cdk deploy $(CDK_ARGS) --outputs-file cdk-outputs.json
	$(CLOUD_ENV) $(GO) run ./cmd/rmctl dashboard publish --dir web/dist/app --cdk-outputs infra/cdk-outputs.json

## diff: cdk diff between this tree and the deployed stack (STAGE=, TENANT=)
diff: build infra/node_modules/.package-lock.json
	cd infra && $(CLOUD_ENV) $(INFRA_ENV) npx --no-install cdk diff $(CDK_ARGS)

infra/node_modules/.package-lock.json: infra/package.json infra/package-lock.json
	cd infra && npm ci --no-audit --no-fund

## test-infra: the stack's tests (assertions, IAM walk, cdk-nag); needs Go and Node.js only
test-infra:
	cd infra && $(INFRA_ENV) $(GO) test -count=1 ./...

## agent: the agent for this host (bin/restic-monitor-agent) and static cross-builds for each
## platform it ships on (bin/agent/<os>-<arch>/restic-monitor-agent)
AGENT_PLATFORMS := linux/amd64 linux/arm64 darwin/arm64
AGENT_VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
AGENT_BUILD = CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w -X main.version=$(AGENT_VERSION)'
.PHONY: agent
agent:
	$(AGENT_BUILD) -o $(BIN)/restic-monitor-agent ./agent/cmd/restic-monitor-agent
	@set -e; for p in $(AGENT_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; \
		echo "agent: $$os/$$arch"; \
		GOOS=$$os GOARCH=$$arch $(AGENT_BUILD) -o $(BIN)/agent/$$os-$$arch/restic-monitor-agent ./agent/cmd/restic-monitor-agent; \
	done
