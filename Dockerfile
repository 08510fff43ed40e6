# The gateway as one static binary on an empty image.
#   docker build -t gateway .
#   docker run --rm -p 8080:8080 gateway --backend http://10.0.0.5:3000 --api-key "$KEY"
# Backends may be host names: the static binary resolves them with c-ares from
# the /etc/hosts and /etc/resolv.conf Docker gives every container (no NSS).
# https:// backends are verified against /etc/ssl/certs/ca-certificates.crt,
# copied from Debian's ca-certificates below; to use your own store, mount it
# over that file (or the directory) read-only, or add CAs with --upstream-ca:
#   docker run --rm -p 8080:8080 -v /etc/ssl/certs:/etc/ssl/certs:ro \
#     -v "$PWD/ca.pem:/ca.pem:ro" gateway --backend https://10.0.0.5:8443 --upstream-ca /ca.pem
# HTTPS for clients: mount the certificates read-only and name them,
#   docker run --rm -p 443:8443 -v /etc/letsencrypt/live/example.com:/certs:ro gateway \
#     --listen 0.0.0.0:8443 --tls-cert /certs/fullchain.pem --tls-key /certs/privkey.pem \
#     --backend http://10.0.0.5:3000
# and `docker kill --signal HUP CONTAINER` after renewal re-reads them.
# I/O backend: Docker's default seccomp profile refuses io_uring, so the
# gateway (--io-backend auto) runs on epoll there and says so at start-up; a
# profile that allows io_uring_setup, io_uring_enter and io_uring_register
# lets it use the ring (README, "The I/O backends").

# Build: Debian 12, the same packages as CI; scripts/static.sh configures
# GATEWAY_STATIC=ON, builds, checks the binary is static and serves /health.
FROM debian:12 AS build
WORKDIR /src
COPY scripts/ scripts/
RUN ./scripts/deps.sh && GATEWAY_DEPS_EXTRA=file ./scripts/deps.sh && rm -rf /var/lib/apt/lists/*
COPY CMakeLists.txt ./
COPY cmake/ cmake/
COPY gateway/ gateway/
COPY loadtest/ loadtest/
RUN ./scripts/static.sh

# Run: nothing but the binary.
FROM scratch
COPY --from=build /src/build-static/bin/gateway /gateway
# The system trust store for https:// backends (the image has no /usr/lib/ssl,
# OpenSSL's compiled-in default: the gateway then reads this bundle).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
USER 65534:65534
EXPOSE 8080
# Later flags win, so `docker run ... gateway --listen 0.0.0.0:9000` works too.
ENTRYPOINT ["/gateway", "--listen", "0.0.0.0:8080"]
