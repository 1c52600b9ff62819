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

.PHONY: build connector run test lint bench generate tools fuzz clean

# First-party connectors, each built from plugins/<name>/cmd/<name>; those
# in WASM_CONNECTORS ship both forms from that one source.
CONNECTORS      := echo webhook smtp
WASM_CONNECTORS := echo webhook

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/relay ./cmd/relay
	@for c in $(CONNECTORS); do $(MAKE) --no-print-directory connector NAME=$$c || exit 1; done

# Installs one connector as the catalog lays it out:
# bin/connectors/<name>/<version>/{connector, connector.sha256, manifest.json},
# plus {connector.wasm, connector.wasm.sha256} for WASM_CONNECTORS, whose
# manifest is then the wasm form's (runtime wasm; docs/wasm-abi.md,
# Packaging), printed by the native binary's `spec wasm`.
connector:
	@tmp=$(BIN)/connectors/.$(NAME).build; mkdir -p $(BIN)/connectors; \
	$(GO) build -trimpath -o $$tmp ./plugins/$(NAME)/cmd/$(NAME) || exit 1; \
	v=$$($$tmp version) || exit 1; d=$(BIN)/connectors/$(NAME)/$$v; \
	mkdir -p $$d && mv $$tmp $$d/connector && \
	sha256sum $$d/connector | cut -d' ' -f1 > $$d/connector.sha256 || exit 1; \
	if echo " $(WASM_CONNECTORS) " | grep -q " $(NAME) "; then \
		GOOS=wasip1 GOARCH=wasm $(GO) build -trimpath -buildmode=c-shared -o $$d/connector.wasm ./plugins/$(NAME)/cmd/$(NAME) && \
		sha256sum $$d/connector.wasm | cut -d' ' -f1 > $$d/connector.wasm.sha256 && \
		$$d/connector spec wasm > $$d/manifest.json && \
		echo "built connector $(NAME)@$$v (native and wasm)"; \
	else \
		$$d/connector spec > $$d/manifest.json && \
		echo "built connector $(NAME)@$$v"; \
	fi

# Extra server flags go in ARGS: make run ARGS='--egress-allow 127.0.0.1/32'
run: build
	./$(BIN)/relay serve $(ARGS)

# Without RELAY_TEST_POSTGRES_URL / RELAY_TEST_REDIS_URL the PostgreSQL and
# Redis tests skip, saying so; .ci/run sets both. The event stream tests
# drive a real EventSource client, on Node 20 or later, installed here.
EVENTSOURCE := core/httpapi/testdata/eventsource
test: $(EVENTSOURCE)/node_modules
	@[ -n "$$RELAY_TEST_POSTGRES_URL" ] || echo "NOTE: RELAY_TEST_POSTGRES_URL is not set: the PostgreSQL tests skip (see README)"
	@[ -n "$$RELAY_TEST_REDIS_URL" ] || echo "NOTE: RELAY_TEST_REDIS_URL is not set: the Redis tests skip (see README)"
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
generate: tools
	@for m in $(MODULES); do (cd $$m && PATH="$(TOOLS):$$PATH" $(GO) generate ./...) || exit 1; done

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
