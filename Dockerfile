# syntax=docker/dockerfile:1
#
# prizewheel container image: a release build on Debian bookworm, run as an
# unprivileged user on debian:bookworm-slim.
#
#   docker build -t prizewheel .
#   docker run --rm -e REDIS_URL=... -e DATABASE_URL=... -e PRIZEWHEEL_JWT_SECRET=... \
#       -p 8080:8080 prizewheel              # serve (the default command)
#   docker run --rm -e DATABASE_URL=... prizewheel migrate   # one-shot migrations
#
# The image reads config/prizewheel.production.yaml (PRIZEWHEEL_CONFIG below);
# mount your own file over it or point PRIZEWHEEL_CONFIG elsewhere. Its health
# check is `prizewheel healthcheck` (GET /healthz on PRIZEWHEEL_LISTEN): the
# slim runtime has no curl.

# ---- build ------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src

# 1. Dependencies only, in a layer of their own: it is rebuilt when Cargo.toml
#    or Cargo.lock change, not when the sources do. Empty stand-ins take the
#    place of every target the manifest names (lib, bin, example).
COPY Cargo.toml Cargo.lock ./
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    mkdir -p src bench \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && echo 'fn main() {}' > bench/redis_footprint.rs \
    && cargo build --release --locked \
    && rm -rf src target/release/prizewheel* target/release/deps/prizewheel-* \
        target/release/deps/libprizewheel-* target/release/.fingerprint/prizewheel-*

# 2. The service itself. The Lua scripts and SQL migrations are compiled into
#    the binary (include_str!, sqlx::migrate!), so they are build inputs too.
#    `touch` makes cargo see the sources as newer than the stand-ins' outputs.
COPY src ./src
COPY lua ./lua
COPY migrations ./migrations
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    find src -name '*.rs' -exec touch {} + \
    && cargo build --release --locked \
    && ./target/release/prizewheel --version

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# No packages: TLS roots are compiled in (rustls + webpki roots) and time zones
# too (chrono-tz). Unprivileged user with a fixed uid/gid, so orchestrators can
# enforce non-root.
RUN groupadd --system --gid 10001 prizewheel \
    && useradd --system --uid 10001 --gid prizewheel \
        --home-dir /app --no-create-home --shell /usr/sbin/nologin prizewheel

# The working directory holds what the commands read relative to it: config/
# (service config, campaigns/*.yaml for `prizewheel campaign apply`), and for
# reference the lua/ scripts and migrations/ that are built into the binary.
# Owned by root and read-only to the service user.
WORKDIR /app
COPY --from=builder /src/target/release/prizewheel /app/prizewheel
COPY config ./config
COPY lua ./lua
COPY migrations ./migrations

USER 10001:10001
ENV PRIZEWHEEL_LISTEN=0.0.0.0:8080
ENV PRIZEWHEEL_CONFIG=config/prizewheel.production.yaml
EXPOSE 8080

# Liveness of the process: the probe has a 2 s deadline of its own.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/app/prizewheel", "healthcheck"]

# SIGTERM: stop accepting, drain requests, let the settler ack its batch.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/prizewheel"]
CMD ["serve"]
