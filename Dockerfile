# syntax=docker/dockerfile:1
#
# bars-receiver: multi-stage build, small non-root runtime.
#
#   docker build -t bars-receiver .
#   docker run --rm -p 8443:8443 -p 127.0.0.1:9090:9090 \
#     -v /srv/bars/etc:/etc/bars-receiver:ro -v bars-data:/var/lib/bars-receiver \
#     bars-receiver
#
# Configuration and certificates are mounted read-only under /etc/bars-receiver; the inbox
# lives under /var/lib/bars-receiver. Every setting can be overridden with BARS_ variables.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY config ./config
# Declared in Cargo.toml, so the manifest needs them present (they are not built).
COPY benches ./benches
# The production binary: the `cli` feature without `dev-tools` (no dev PKI, dev proxy or
# dev stack).
RUN cargo build --release --locked --no-default-features --features cli --bin bars-receiver \
 && mkdir -p /out/var/lib/bars-receiver /out/etc/bars-receiver \
 && cp target/release/bars-receiver /out/bars-receiver

# glibc and libgcc only, no shell, runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/bars-receiver /usr/local/bin/bars-receiver
COPY --from=build --chown=65532:65532 /out/var/lib/bars-receiver /var/lib/bars-receiver
COPY --from=build /out/etc/bars-receiver /etc/bars-receiver
USER 65532:65532
ENV BARS_ADMIN__ADDRESS=0.0.0.0:9090 \
    BARS_INBOX__PATH=/var/lib/bars-receiver/inbox.db \
    BARS_LOG__FORMAT=json
EXPOSE 8443 9090
VOLUME ["/var/lib/bars-receiver"]
HEALTHCHECK --interval=15s --timeout=6s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/bars-receiver", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/bars-receiver"]
CMD ["serve", "--config", "/etc/bars-receiver/config.toml"]
