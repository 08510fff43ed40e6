# The gateway as one static binary on an empty image.
#   docker build -t gateway .
#   docker run --rm -p 8080:8080 gateway --backend http://10.0.0.5:3000 --api-key "$KEY"
# A static glibc binary cannot use NSS: give backends as numeric addresses.
# HTTPS (OpenSSL is linked in): mount the certificates read-only and name them,
#   docker run --rm -p 443:8443 -v /etc/letsencrypt/live/example.com:/certs:ro gateway \
#     --listen 0.0.0.0:8443 --tls-cert /certs/fullchain.pem --tls-key /certs/privkey.pem \
#     --backend http://10.0.0.5:3000
# and `docker kill --signal HUP CONTAINER` after renewal re-reads them.

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
USER 65534:65534
EXPOSE 8080
# Later flags win, so `docker run ... gateway --listen 0.0.0.0:9000` works too.
ENTRYPOINT ["/gateway", "--listen", "0.0.0.0:8080"]
