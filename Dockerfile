# Multi-stage build: compile in the full Rust image, run in a slim Debian image as an
# unprivileged user. The runtime image has no compiler, no shell tools beyond Debian's
# base, and no PostgreSQL: in containers the gateway always talks to an external server.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin ultracore

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/ultracore --create-home ultracore
COPY --from=build /src/target/release/ultracore /usr/local/bin/ultracore
USER ultracore
WORKDIR /var/lib/ultracore
ENV ULTRACORE_LISTEN=0.0.0.0:8000 \
    ULTRACORE_DATA_DIR=/var/lib/ultracore
EXPOSE 8000
# /healthz needs no database; bash's /dev/tcp avoids shipping curl.
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8000 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q '200 OK' <&3"]
ENTRYPOINT ["ultracore"]
CMD ["serve"]
