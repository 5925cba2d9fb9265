# mygitops (mgo): build, test and demo targets. `make help` lists them.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

GO       ?= go
BIN_DIR  ?= bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE     ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS  := -X github.com/mygitops/mgo/internal/version.Version=$(VERSION) \
            -X github.com/mygitops/mgo/internal/version.Commit=$(COMMIT) \
            -X github.com/mygitops/mgo/internal/version.Date=$(DATE)

# Where hack/build-testenv.sh puts the control plane binaries (outside the repo).
TESTENV_DIR := $(shell hack/build-testenv.sh --print-dir)
export MGO_TESTENV_DIR := $(TESTENV_DIR)

TEST_FLAGS ?= -race -timeout 20m

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## install missing system packages (apt-get)
	hack/install-deps.sh

.PHONY: build
build: ## build bin/mgo
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN_DIR)/mgo ./cmd/mgo

.PHONY: testenv
testenv: deps ## build the local control plane binaries (cached outside the repo)
	hack/build-testenv.sh

.PHONY: test
test: testenv ## run every test against the local control plane, with the race detector
	@rc=0; $(GO) test $(TEST_FLAGS) ./... || rc=$$?; \
	hack/check-leftovers.sh "$(TESTENV_DIR)" || rc=1; \
	exit $$rc

.PHONY: lint
lint: ## gofmt and go vet
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [[ -n "$$out" ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: demo
demo: testenv build ## run the main job on the local control plane: gitops repo, mgo serve, a deploy, the rollout (DEMO_FLAGS=--keep: then the dashboard's URL)
	$(GO) run ./hack/demo --mgo $(BIN_DIR)/mgo $(DEMO_FLAGS)

.PHONY: bench
bench: testenv ## benchmark mgo against the floor, a helm loop and helmfile (docs/benchmarks.md; BENCH_FLAGS="-n 1000 -helm-diff PATH")
	$(GO) run ./bench $(BENCH_FLAGS)

.PHONY: devcluster
devcluster: testenv ## run a local control plane in the foreground for kubectl
	$(GO) run ./hack/devcluster

# Release binaries: static (CGO_ENABLED=0), version stamped. `make image`
# puts the two linux ones into the image.
DIST_DIR       ?= $(BIN_DIR)/dist
DIST_PLATFORMS := linux-amd64 linux-arm64 darwin-amd64 darwin-arm64
IMAGE_DIR      ?= $(BIN_DIR)/image
PUSH           ?=
IMAGE_FLAGS    ?=

$(DIST_DIR)/mgo-%: FORCE
	@mkdir -p $(DIST_DIR)
	CGO_ENABLED=0 GOOS=$(word 1,$(subst -, ,$*)) GOARCH=$(word 2,$(subst -, ,$*)) \
	  $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $@ ./cmd/mgo

.PHONY: dist
dist: $(addprefix $(DIST_DIR)/mgo-,$(DIST_PLATFORMS)) ## release binaries for linux and darwin, amd64 and arm64, with SHA256SUMS, in bin/dist
	cd $(DIST_DIR) && sha256sum $(addprefix mgo-,$(DIST_PLATFORMS)) > SHA256SUMS

.PHONY: image
image: $(DIST_DIR)/mgo-linux-amd64 $(DIST_DIR)/mgo-linux-arm64 ## OCI image (linux/amd64+arm64) in bin/image and bin/mgo-image.tar, no Docker; PUSH=registry/repo pushes it
	$(GO) run ./hack/image --binaries $(DIST_DIR) --version "$(VERSION)" --revision "$(COMMIT)" --created "$(DATE)" \
	  --out $(IMAGE_DIR) --archive $(BIN_DIR)/mgo-image.tar $(if $(PUSH),--push "$(PUSH)") $(IMAGE_FLAGS)

.PHONY: FORCE
FORCE:

.PHONY: clean
clean: ## remove build output (not the testenv cache)
	rm -rf $(BIN_DIR)
