# returnpath — see README.md. `make test` is what CI runs (after `make deps`, as root).
GO       ?= go
BIN      ?= bin/returnpath
PKGS     ?= ./...
# Debian packages the lab tests and the demo need (PostgreSQL for the throwaway database), and
# what `make image` and `make deb` need: podman to build the image, the CA bundle and tzdata it
# ships, systemd-analyze to check the units, adduser for the package's postinst; chromium for the
# review desk's browser tests (with axe-core from npm, scripts/fetch-axe.sh, for tests only).
DEBS     ?= frr openssh-server nftables iproute2 iputils-ping tcpdump sudo postgresql curl jq \
            podman ca-certificates tzdata systemd adduser chromium

# What the binary says it is (returnpath version, /healthz, returnpath_build_info). The date is
# the commit's unless SOURCE_DATE_EPOCH says otherwise, so that one commit builds one binary.
VERSION  ?= $(shell git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null || echo v0.0.0-$$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown))
COMMIT   ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell git rev-parse -q --verify HEAD >/dev/null 2>&1 && { git diff --quiet HEAD -- 2>/dev/null || echo -dirty; })
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
BUILD_DATE ?= $(shell date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ)
export SOURCE_DATE_EPOCH
BUILDINFO = github.com/returnpath/returnpath/internal/buildinfo
LDFLAGS  ?= -s -w -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).commit=$(COMMIT) -X $(BUILDINFO).date=$(BUILD_DATE)
GOARCH   ?= $(shell $(GO) env GOARCH)

# The container image `make image` builds with podman, and where dist files go.
IMAGE    ?= localhost/returnpath
DIST     ?= dist

.PHONY: all build test test-short lint bench deps demo run clean fuzz image image-check image-clean deb deb-check compose-check bench-peers bench-fleet

all: build

# A static binary (no cgo: it runs on scratch and on any glibc), stamped with the version. The
# image and the package ship this very file.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/returnpath

# Tests run through gotestsum (pinned in go.mod's tool directive): one line per package as it
# finishes, the output of failed tests as they fail, and at the end every skipped test with its
# reason, then "DONE N tests, M skipped". Arguments after -- are go test's own.
GOTESTSUM ?= $(GO) tool gotestsum --format pkgname-and-test-fails --format-hide-empty-pkg --format-icons text

# Everything, with the race detector: about 10 minutes on 2 cores, much of it the race build
# before the first package line. The lab tests need root and $(DEBS); without them they skip
# (and are listed at the end), unless RETURNPATH_REQUIRE_LAB=1 (set by .ci/run), which turns a
# skip into a failure.
test: deps
	$(GOTESTSUM) -- -race -count=1 -timeout 35m $(PKGS)

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

# The peer comparison of issue 14 on the lab (as root): returnpath beside Ansible's frr.frr
# cli_config, netmiko and one raw SSH pipe, logged as a markdown table (docs/benchmarks.md).
# Not part of make test: it takes several minutes. Its Debian packages are bench-only, so they
# are installed here and not by make deps (Debian's ansible ships the frr.frr collection).
PEER_DEBS ?= ansible python3-netmiko sshpass
bench-peers: deps
	@missing=""; for p in $(PEER_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	RETURNPATH_REQUIRE_LAB=1 $(GO) test -run '^$$' -bench '^BenchmarkPeers$$' -benchtime 1x -timeout 60m ./internal/e2e/

# The fleet benchmark of issue 14 on the lab (as root): 20,000 hosts, 10 segments, 11 devices.
bench-fleet: deps
	RETURNPATH_REQUIRE_LAB=1 $(GO) test -run '^$$' -bench '^BenchmarkFleet$$' -benchtime 1x -timeout 30m ./internal/e2e/

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
	@./scripts/fetch-axe.sh

# The main job: the whole story on the namespace lab, narrated. Needs root on Linux.
demo: deps build
	./scripts/demo.sh $(BIN)

run: build
	$(BIN) serve

# The container image, FROM scratch, from the binary above and this machine's CA bundle and
# tzdata: no base image is pulled (see the Dockerfile for the from-source build users run).
# --format docker: the OCI format has no HEALTHCHECK, and podman would drop it. The label marks
# the build's intermediate images too, for image-clean (--layers=false, which would keep none,
# fails in podman 4.3 on the Dockerfile's stage alias).
IMAGE_MARK = io.github.returnpath.build=make-image
image: build
	sh packaging/image/rootfs.sh $(BIN) /etc/ssl/certs/ca-certificates.crt /usr/share/zoneinfo $(DIST)/rootfs
	podman build --format docker --label $(IMAGE_MARK) --build-arg ROOTFS=from-context \
		--build-arg VERSION=$(VERSION) --build-arg REVISION=$(COMMIT) --build-arg CREATED=$(BUILD_DATE) \
		-t $(IMAGE):$(VERSION) -t $(IMAGE):latest .

# Inspects the image (user, entrypoint, healthcheck, labels, port, files) and runs the binary
# taken out of it: this machine builds images but cannot run containers.
image-check: image
	sh packaging/image/check.sh $(IMAGE):$(VERSION) $(VERSION)

# Removes every image `make image` made, tagged or intermediate (CI does, so that images do
# not pile up run after run); images of anything else stay.
image-clean:
	podman image prune --all --force --filter label=$(IMAGE_MARK) >/dev/null

# The Debian package, with nfpm (a module of its own in build/nfpm, so that its dependencies
# stay out of returnpath's go.mod).
deb: build
	$(GO) -C build/nfpm build -o $(CURDIR)/bin/nfpm github.com/goreleaser/nfpm/v2/cmd/nfpm
	mkdir -p $(DIST)
	rm -f $(DIST)/returnpath_*.deb
	RP_VERSION=$(VERSION) RP_ARCH=$(GOARCH) RP_BIN=$(BIN) bin/nfpm package --config packaging/deb/nfpm.yaml --packager deb --target $(DIST)/

# Installs the package (dpkg -i, as root), checks its files, user and units, and purges it.
deb-check: deb
	sh packaging/deb/check.sh $(DIST)/returnpath_*.deb $(VERSION)

# docker-compose.yml against the Compose Specification's JSON schema (build/compose-spec.json).
compose-check:
	$(GO) test -count=1 -run 'TestCompose' ./packaging/

clean:
	rm -rf bin $(DIST)
