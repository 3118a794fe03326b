# eindr-edge on an empty base: one static binary and nothing else (no shell, no libc), run as
# an unprivileged user. The binary is built first, on the host:
#
#   rustup target add x86_64-unknown-linux-musl     # and Debian's musl-tools, for ring's C
#   cargo build --release --target x86_64-unknown-linux-musl -p edge-server
#   podman build --format docker -f deploy/edge.Dockerfile -t eindr-edge .   (or docker build)
#
# Minimal mode with the memory store by default (Railway/Fly-style: one container):
#   docker run -p 8787:8787 -e JWT_HS256_SECRET=... -e JWT_ISSUER=... -e JWT_AUDIENCE=... eindr-edge
FROM scratch
ARG BINARY=target/x86_64-unknown-linux-musl/release/eindr-edge
COPY ${BINARY} /eindr-edge
USER 65534:65534
ENV MINIMAL_MODE=true \
    EDGE_ADDR=0.0.0.0:8787 \
    STORE_URL=memory
EXPOSE 8787
# The binary probes itself: there is no curl here.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/eindr-edge", "--healthcheck"]
ENTRYPOINT ["/eindr-edge"]
