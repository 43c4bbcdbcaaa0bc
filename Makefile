# returnpath — see README.md. `make test` is what CI runs (after `make deps`, as root).
GO       ?= go
BIN      ?= bin/returnpath
PKGS     ?= ./...
# Debian packages the lab tests and the demo need (PostgreSQL for the throwaway database).
DEBS     ?= frr openssh-server nftables iproute2 iputils-ping tcpdump sudo postgresql curl jq

.PHONY: all build test test-short lint bench deps demo run clean fuzz

all: build

build:
	$(GO) build -o $(BIN) ./cmd/returnpath

# Tests run through gotestsum (pinned in go.mod's tool directive): one line per package as it
# finishes, the output of failed tests as they fail, and at the end every skipped test with its
# reason, then "DONE N tests, M skipped". Arguments after -- are go test's own.
GOTESTSUM ?= $(GO) tool gotestsum --format pkgname-and-test-fails --format-hide-empty-pkg --format-icons text

# Everything, with the race detector: about 15 minutes on 2 cores, most of it the race build
# before the first package line. The lab tests need root and $(DEBS); without them they skip
# (and are listed at the end), unless RETURNPATH_REQUIRE_LAB=1 (set by .ci/run), which turns a
# skip into a failure.
test: deps
	$(GOTESTSUM) -- -race -count=1 -timeout 25m $(PKGS)

# The pure and database tests only (no lab): quick feedback.
test-short:
	RETURNPATH_REQUIRE_LAB= $(GOTESTSUM) -- -count=1 -short $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)
	@out=$$($(GO) mod tidy -diff); if [ -n "$$out" ]; then echo "go.mod/go.sum are not tidy (run 'go mod tidy'):"; echo "$$out"; exit 1; fi
	./scripts/check-alerts.sh docs/alerts.yml

# Benchmarks; results and the exact commands are recorded in docs/benchmarks.md.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 1x -timeout 30m ./internal/postgres/... ./cmd/... ./drivers/...

# Short fuzzing runs of the renderers and parsers.
fuzz:
	@for f in $$($(GO) test -list '^Fuzz' ./drivers/ssh/ | grep ^Fuzz); do $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 10s ./drivers/ssh/ || exit 1; done

# Install the Debian packages the tests and the demo need (as root on Debian/Ubuntu; otherwise
# it only says what is missing, and the lab tests skip).
deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "missing Debian packages:$$missing; the lab tests will skip (run 'sudo make deps')"; exit 0; fi; \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The main job: the whole story on the namespace lab, narrated. Needs root on Linux.
demo: deps build
	./scripts/demo.sh $(BIN)

run: build
	$(BIN) serve

clean:
	rm -rf bin
