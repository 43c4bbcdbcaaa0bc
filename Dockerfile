# syntax=docker/dockerfile:1
# returnpath's container image: a static binary on scratch, with CA certificates, tzdata and a
# non-root user, and nothing else (no shell, no curl: `returnpath healthcheck` is the probe).
#
# Two ways to fill it, one final stage:
#   docker build -t returnpath .
#       builds from source in the Go image (ROOTFS=from-source, the default).
#   make image
#       ROOTFS=from-context: unpacks dist/rootfs.tar, which the Makefile lays out from a binary
#       built on the host (CGO_ENABLED=0) and the host's CA bundle and tzdata. For machines that
#       can reach no image registry; no base image is pulled.
# Both lay the files out with packaging/image/rootfs.sh.

ARG GO_VERSION=1.26.8
ARG ROOTFS=from-source

# ---- from source: build the binary and the file tree in the Go toolchain's image
FROM docker.io/library/golang:${GO_VERSION}-bookworm AS from-source
ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE_DATE_EPOCH=0
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates tzdata >/dev/null
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w \
      -X github.com/returnpath/returnpath/internal/buildinfo.version=${VERSION} \
      -X github.com/returnpath/returnpath/internal/buildinfo.commit=${REVISION} \
      -X github.com/returnpath/returnpath/internal/buildinfo.date=${CREATED}" \
      -o /out/returnpath ./cmd/returnpath \
 && sh packaging/image/rootfs.sh /out/returnpath /etc/ssl/certs/ca-certificates.crt /usr/share/zoneinfo /out/rootfs \
 && mkdir /rootfs && tar -C /rootfs -xpf /out/rootfs.tar

# ---- from the build context: the archive `make image` prepared (ADD unpacks it, owners kept)
FROM scratch AS from-context
ADD dist/rootfs.tar /rootfs/

FROM ${ROOTFS} AS rootfs

# ---- the image
FROM scratch
ARG VERSION=unknown
ARG REVISION=unknown
ARG CREATED=unknown
COPY --from=rootfs /rootfs/ /
LABEL org.opencontainers.image.title="returnpath" \
      org.opencontainers.image.description="Allocates docker0 subnets to Docker hosts and pushes their return routes to switches and firewalls after review" \
      org.opencontainers.image.source="https://github.com/returnpath/returnpath" \
      org.opencontainers.image.url="https://github.com/returnpath/returnpath" \
      org.opencontainers.image.documentation="https://github.com/returnpath/returnpath/blob/main/README.md" \
      org.opencontainers.image.vendor="returnpath" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
ENV TZ=UTC
WORKDIR /var/lib/returnpath
USER 10001:10001
EXPOSE 8080
# Mount the configuration at /etc/returnpath/returnpath.yaml (the default path), or pass
# --config. The healthcheck reads the same file (or RETURNPATH_LISTEN) to find the port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["/usr/bin/returnpath", "healthcheck"]
ENTRYPOINT ["/usr/bin/returnpath"]
CMD ["serve"]
