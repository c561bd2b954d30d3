# Gatehouse container image: a static binary on a distroless base (no shell,
# CA certificates included, non-root user 65532).
#
#   podman build --format docker -t gatehouse .   # docker format keeps HEALTHCHECK
#   podman run -d -p 80:80 -p 443:443 \
#     -v ./gatehouse.toml:/etc/gatehouse/gatehouse.toml:ro \
#     -v gatehouse-state:/var/lib/gatehouse \
#     --read-only gatehouse
#
# The state volume keeps ACME account, certificates, OCSP staples and bans
# across restarts: without it every restart orders new certificates and
# soon hits the CA's rate limits.

FROM docker.io/library/golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/gatehouse ./cmd/gatehouse \
 && /out/gatehouse version \
 && mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gatehouse /usr/local/bin/gatehouse
COPY --from=build /src/examples/minimal.toml /etc/gatehouse/gatehouse.toml
# The state directory must be a volume (see above); owned by the runtime
# user so a fresh named volume is writable.
COPY --from=build --chown=65532:65532 /out/state /var/lib/gatehouse
VOLUME ["/var/lib/gatehouse"]
USER 65532:65532
EXPOSE 80 443
# Binding 80/443 as non-root: run with --cap-add=NET_BIND_SERVICE or
# --sysctl net.ipv4.ip_unprivileged_port_start=80. Run the edge container
# rootful: rootless Podman on a bridge network forwards published ports
# through rootlessport, which hides client addresses from rate limits and
# bans (see deploy/podman/).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/gatehouse", "health", "-admin", "127.0.0.1:9180"]
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["run", "-config", "/etc/gatehouse/gatehouse.toml"]
