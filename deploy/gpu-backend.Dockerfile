# gpu-backend on an empty base: one static binary, run as an unprivileged user. It fronts a
# vLLM server (VLLM_SERVER_URL; in compose and Kubernetes, vLLM's official image beside it),
# or serves with its CPU engine on the model's checkpoint directory mounted at /models
# (ENGINE=cpu CPU_MODEL_PATH=/models/bloom-560m, quantized to CPU_PRECISION as it loads).
# The binary is built first, on the host:
#
#   rustup target add x86_64-unknown-linux-musl     # and Debian's musl-tools
#   cargo build --release --target x86_64-unknown-linux-musl -p gpu-backend
#   podman build --format docker -f deploy/gpu-backend.Dockerfile -t eindr-gpu-backend .
FROM scratch
ARG BINARY=target/x86_64-unknown-linux-musl/release/gpu-backend
COPY ${BINARY} /gpu-backend
USER 65534:65534
ENV BACKEND_LISTEN=0.0.0.0:8000 \
    VLLM_SERVER_URL=http://vllm:8001 \
    CHAT_MODEL_NAME=bigscience/bloom-560m
EXPOSE 8000
# 200 once an engine can answer (vLLM passing its health check, or the CPU engine loaded).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["/gpu-backend", "--healthcheck"]
ENTRYPOINT ["/gpu-backend"]
