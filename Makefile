# Relay's tasks. `make run` and `make test` are the quickstart; see README.md.

GO          ?= go
BIN         := bin
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X main.version=$(VERSION)
# staticcheck 2026.2.2; `go run` fetches it through the module proxy.
STATICCHECK := $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 15s
# The root module and the SDK, which is a module of its own.
MODULES     := . sdk

.PHONY: build package run test lint openapi-lint bench generate tools fuzz clean

# First-party connectors: plugins/<name> is a connector module as an
# author's is (relay.json, README.md, LICENSE, CHANGELOG.md), packed by
# bin/relay's own `connector build` and `connector pack` into
# bin/packages/relay-<name>-<version>.relaypkg (and its .index), which
# `relay serve` publishes into its registry at start (docs/registry.md,
# First-party packages). Each package carries the native binary for this
# machine (or those of PACKAGE_PLATFORMS: replicas of other platforms on
# one database need the same package, so build it for all of them:
# make build PACKAGE_PLATFORMS='linux/amd64 linux/arm64') and, unless
# relay.json says "wasm": false, the WASM module. The same source and Go
# make the same bytes.
CONNECTORS        := echo webhook smtp
PACKAGE_PLATFORMS ?= $(shell $(GO) env GOOS)/$(shell $(GO) env GOARCH)

# The Studio (core/studio/web, TypeScript on the client of sdk/typescript)
# is built by vite into core/studio/dist, which the binary embeds; its
# tools, pinned in its lock file, need Node.js 20.19 or later.
STUDIO := core/studio/web
TSDIR  := sdk/typescript

build: $(STUDIO)/node_modules $(TSDIR)/node_modules
	cd $(STUDIO) && npm run --silent build
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/relay ./cmd/relay
	@mkdir -p $(BIN)/packages
	@for c in $(CONNECTORS); do $(MAKE) --no-print-directory package NAME=$$c || exit 1; done

# Builds and packs one first-party connector into bin/packages.
package:
	@./$(BIN)/relay connector build --dir plugins/$(NAME) $(addprefix --platform ,$(PACKAGE_PLATFORMS)) --out $(BIN)/build/$(NAME) >/dev/null 2>$(BIN)/build-$(NAME).log || { cat $(BIN)/build-$(NAME).log; exit 1; }
	@out=$$(./$(BIN)/relay connector pack --dir plugins/$(NAME) --dist $(BIN)/build/$(NAME) --out $(BIN)/packages) || exit 1; echo "$$out" | head -1
	@rm -f $(BIN)/build-$(NAME).log

# Extra server flags go in ARGS: make run ARGS='--egress-allow 127.0.0.1/32'
run: build
	./$(BIN)/relay serve $(ARGS)

# Without RELAY_TEST_POSTGRES_URL / RELAY_TEST_REDIS_URL the PostgreSQL and
# Redis tests skip, saying so; .ci/run sets both. The event stream tests
# drive a real EventSource client, on Node 20 or later, installed here.
EVENTSOURCE := core/httpapi/testdata/eventsource

# The TypeScript client (sdk/typescript): its types are generated from
# the OpenAPI document (make generate), and TestTypeScriptClient compiles
# and runs its sample against a server. Its tools, pinned in its lock file,
# need Node.js 20 or later. openapi-lint checks the document against
# Redocly's recommended-strict rules (schemas/redocly.yaml says what it
# passes over, and why); .ci/run runs it. (TSDIR is set above: the
# Studio's build needs it too.)

test: $(EVENTSOURCE)/node_modules $(TSDIR)/node_modules $(STUDIO)/node_modules
	@[ -n "$$RELAY_TEST_POSTGRES_URL" ] || echo "NOTE: RELAY_TEST_POSTGRES_URL is not set: the PostgreSQL tests skip (see README)"
	@[ -n "$$RELAY_TEST_REDIS_URL" ] || echo "NOTE: RELAY_TEST_REDIS_URL is not set: the Redis tests skip (see README)"
	@[ -n "$$RELAY_TEST_STRIPE_MOCK_URL" ] || echo "NOTE: RELAY_TEST_STRIPE_MOCK_URL is not set: the Stripe tests skip (see README)"
	@for m in $(MODULES); do \
		echo "== go test $$m"; \
		(cd $$m && $(GO) test -race -count=1 -timeout 30m ./...) || exit 1; \
	done

$(EVENTSOURCE)/node_modules: $(EVENTSOURCE)/package-lock.json
	cd $(EVENTSOURCE) && npm ci --no-audit --no-fund

lint:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do \
		(cd $$m && $(GO) vet ./... && $(STATICCHECK) ./...) || exit 1; \
	done

$(TSDIR)/node_modules: $(TSDIR)/package-lock.json
	cd $(TSDIR) && npm ci --no-audit --no-fund

$(STUDIO)/node_modules: $(STUDIO)/package-lock.json
	cd $(STUDIO) && npm ci --no-audit --no-fund

openapi-lint: $(TSDIR)/node_modules
	$(TSDIR)/node_modules/.bin/redocly lint --config schemas/redocly.yaml schemas/openapi.json

bench:
	@[ -n "$$RELAY_TEST_POSTGRES_URL" ] || echo "NOTE: RELAY_TEST_POSTGRES_URL is not set: the PostgreSQL benchmarks skip (see README)"
	@for m in $(MODULES); do \
		(cd $$m && $(GO) test -run '^$$' -bench . -benchmem ./...) || exit 1; \
	done

# Code generators, pinned; protoc itself comes from Debian's protobuf-compiler.
TOOLS := $(CURDIR)/$(BIN)/tools
tools:
	@command -v protoc >/dev/null || { echo "protoc is missing: apt-get install protobuf-compiler"; exit 1; }
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1

# Regenerates committed generated code; CI fails when the result differs.
generate: tools $(TSDIR)/node_modules
	@for m in $(MODULES); do (cd $$m && PATH="$(TOOLS):$$PATH" $(GO) generate ./...) || exit 1; done
	cd $(TSDIR) && npm run --silent generate

# Runs every fuzz target for FUZZTIME each.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf $(BIN)
