# restic-monitor — entry points. Go is the only prerequisite; everything else is fetched and
# built into bin/ (ignored, and reused across runs).

SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
RESTIC_VERSION := v0.18.1
STATICCHECK_VERSION := v0.6.1

export AWS_ENDPOINT_URL ?= http://127.0.0.1:4566
export RESTIC_BIN := $(BIN)/restic

.PHONY: all test test-unit dev restic emulator lint bench tools

all: test

## test: every test, with the emulator started when nothing answers at AWS_ENDPOINT_URL
test: restic emulator
	RM_REQUIRE_AWS=1 scripts/with-emulator $(GO) test -count=1 ./...

## test-unit: the tests that need nothing but Go
test-unit:
	$(GO) test -short ./...

## dev: the whole system on this machine
dev:
	@echo "make dev: not yet — the local stack arrives with its own issue"

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
