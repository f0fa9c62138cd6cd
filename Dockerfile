# syntax=docker/dockerfile:1
#
# prizewheel container image.
#
#   docker build -t prizewheel .
#   docker run --rm -e REDIS_URL=... -e DATABASE_URL=... -e PRIZEWHEEL_JWT_SECRET=... \
#       -p 8080:8080 prizewheel            # serve (default command)
#   docker run --rm ... prizewheel migrate # one-shot migrations
#
# No HEALTHCHECK: the slim runtime has no curl/wget to probe the HTTP API with.

# ---- build ------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src

# Only what the release build reads: the Lua scripts and SQL migrations are
# embedded into the binary at compile time (include_str!, sqlx::migrate!).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY lua ./lua
COPY migrations ./migrations
COPY config ./config

# The registry cache mount keeps downloaded crates between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# Unprivileged user with a fixed uid/gid (so orchestrators can enforce non-root).
RUN groupadd --system --gid 10001 prizewheel \
    && useradd --system --uid 10001 --gid prizewheel \
        --home-dir /app --no-create-home --shell /usr/sbin/nologin prizewheel

# The binary's default config file is config/prizewheel.yaml relative to the
# working directory; campaign files live under config/campaigns/.
WORKDIR /app
COPY --from=builder /src/target/release/prizewheel /app/prizewheel
COPY --from=builder /src/config /app/config

USER 10001:10001
ENV PRIZEWHEEL_LISTEN=0.0.0.0:8080
EXPOSE 8080

ENTRYPOINT ["/app/prizewheel"]
CMD ["serve"]
