# chatroom server image: `chatctl server start` on 0.0.0.0:50051, as a non-root user.
#
#   docker build -t chatroom:latest .
#   docker run -d --name chatroom -p 127.0.0.1:50051:50051 -v chatroom-data:/var/lib/chatroom chatroom:latest
#   docker exec chatroom cat /var/lib/chatroom/admin.token  # unless CHATROOM_ADMIN_TOKEN is set
#
# Without CHATROOM_DB the database is SQLite in the state directory /var/lib/chatroom.
#
# The same image runs the other chatctl commands and the console client:
#   docker run --rm --entrypoint chatctl chatroom:latest --help
#
# Written for the classic builder as well as BuildKit: no RUN --mount, COPY --chmod/--link,
# heredocs or HEALTHCHECK --start-interval.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: a virtualenv with chatroom and its dependencies ------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# binutils only for `strip`: some wheels (asyncpg) ship their extensions with debug info.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/* \
    && python -m venv /opt/chatroom
WORKDIR /src

# Dependencies first, from pyproject.toml alone, so that editing the code does not
# reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && /opt/chatroom/bin/pip install --requirement requirements.txt \
    && find /opt/chatroom -name '*.so' -exec strip --strip-unneeded {} +

COPY README.md ./
COPY protos ./protos
COPY services ./services
COPY clients ./clients
COPY admin_cli ./admin_cli
# pip byte-compiles what it installs, so a read-only root filesystem (Kubernetes) costs no
# start-up time; the venv's own pip and setuptools are build tools the runtime does not need.
RUN /opt/chatroom/bin/pip install --no-deps . \
    && /opt/chatroom/bin/pip uninstall --yes pip setuptools

# ---- runtime -------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="chatroom" \
      org.opencontainers.image.description="Group chat over gRPC with durable delivery tracking"

# A fixed numeric uid/gid, so that Kubernetes can check runAsNonRoot and a named volume
# mounted on the state directory starts out owned by it.
RUN groupadd --system --gid 10001 chatroom \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /var/lib/chatroom --shell /usr/sbin/nologin chatroom \
    && install -d -o 10001 -g 10001 -m 0700 /var/lib/chatroom

COPY --from=build /opt/chatroom /opt/chatroom

ENV PATH=/opt/chatroom/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CHATROOM_HOME=/var/lib/chatroom \
    CHATROOM_LISTEN=0.0.0.0:50051

USER 10001:10001
WORKDIR /var/lib/chatroom
EXPOSE 50051 9090

# Asks the gRPC health service of the server in this container, in plaintext and with no
# token: on CHATROOM_HEALTH_LISTEN if set (the health-only listener, for a TLS server),
# else on CHATROOM_LISTEN. Set ports through these variables rather than with flags.
HEALTHCHECK --interval=5s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as hg; listen = os.environ.get('CHATROOM_HEALTH_LISTEN') or os.environ.get('CHATROOM_LISTEN', '127.0.0.1:50051'); host, _, port = listen.rpartition(':'); host = '127.0.0.1' if host in ('', '0.0.0.0', '[::]', '::') else host; reply = hg.HealthStub(grpc.insecure_channel(f'{host}:{port}')).Check(h.HealthCheckRequest(), timeout=4); sys.exit(reply.status != h.HealthCheckResponse.SERVING)"]

# Exec form: the server is PID 1 itself (no shell in between), so SIGTERM from
# `docker stop` or the kubelet reaches it and it drains: health NOT_SERVING, open streams
# end with UNAVAILABLE (clients reconnect elsewhere), exit code 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["chatctl", "server", "start"]
