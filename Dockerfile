# syntax=docker/dockerfile:1
#
# The image of mgo for teams that build with a container engine. It is the
# image `make image` builds without one (internal/image): a static binary on
# an empty base, Debian's CA certificates, the non-root user 65532, no shell.
# A test (internal/install) holds this file to internal/image.
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse --short HEAD) \
#     --build-arg DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) -t registry.example.com/mgo:TAG .

FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
      -ldflags "-X github.com/mygitops/mgo/internal/version.Version=$VERSION -X github.com/mygitops/mgo/internal/version.Commit=$COMMIT -X github.com/mygitops/mgo/internal/version.Date=$DATE" \
      -o /out/mgo ./cmd/mgo \
 && mkdir -p /rootfs/home/nonroot /rootfs/tmp \
 && chown 65532:65532 /rootfs/home/nonroot && chmod 0700 /rootfs/home/nonroot && chmod 1777 /rootfs/tmp

FROM scratch
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
COPY internal/image/rootfs/ /
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build --chown=65532:65532 /rootfs/home/nonroot /home/nonroot
COPY --from=build /rootfs/tmp /tmp
COPY --from=build /out/mgo /usr/local/bin/mgo
ENV PATH=/usr/local/bin HOME=/home/nonroot SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /home/nonroot
EXPOSE 8080/tcp
LABEL org.opencontainers.image.title="mgo" \
      org.opencontainers.image.description="mygitops: GitOps delivery of Helm releases to Kubernetes" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$COMMIT" \
      org.opencontainers.image.source="https://github.com/mygitops/mgo" \
      org.opencontainers.image.url="https://github.com/mygitops/mgo" \
      org.opencontainers.image.created="$DATE" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/usr/local/bin/mgo"]
CMD ["serve"]
