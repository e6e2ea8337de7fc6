# The TAO launcher daemon (tao-server) as a container. See README.md, "Run as a service".
#
#   docker build -t tao-server .
#   docker compose up -d                      (docker-compose.yml: the mounts it needs and why)
#
# Any Debian bookworm image with python3 and python3-venv serves as the base, e.g. one made
# without a registry by scripts/build-base-image:  --build-arg BASE_IMAGE=tao-base:bookworm
ARG BASE_IMAGE=python:3.11-slim-bookworm

# --- build: the project and its pinned dependencies in a virtual environment -----------------
FROM ${BASE_IMAGE} AS build
# pip trusts the base image's certificate store, so a site's own authority added there works too.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN python3 -m venv /opt/tao-server
# Dependencies first: this layer is rebuilt only when the pins change, not on every source edit.
COPY requirements/server.txt /src/requirements/server.txt
RUN /opt/tao-server/bin/pip install -q -r /src/requirements/server.txt
COPY pyproject.toml README.md /src/
COPY server /src/server
COPY client /src/client
COPY common /src/common
COPY migrations /src/migrations
# dumb-init: PID 1 that forwards signals to tao-server and reaps zombies; nvidia-ml-py: the GPU
# inventory through NVML when the container is given GPUs (docker-compose.gpu.yml).
RUN /opt/tao-server/bin/pip install -q --no-deps /src \
 && /opt/tao-server/bin/pip check \
 && /opt/tao-server/bin/pip uninstall -q -y pip setuptools \
 && find /opt/tao-server -name '*.pyc' -path '*/pip/*' -delete

# --- the daemon ----------------------------------------------------------------------------
FROM ${BASE_IMAGE}
# scripts/build-image passes these from the checkout (pyproject's version, git's commit and remote).
ARG VERSION=0.1.0
ARG REVISION=
ARG SOURCE=
LABEL org.opencontainers.image.title="tao-server" \
      org.opencontainers.image.description="TAO Toolkit launcher as a service: runs TAO tasks in Docker for the tao CLI and HTTP clients" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/tao-server /opt/tao-server
ENV PATH=/opt/tao-server/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TAO_DATA_DIR=/var/lib/tao \
    TAO_SOCKET=/run/tao/tao.sock
# The job table, job logs and registry logins: keep them on a volume across upgrades.
VOLUME /var/lib/tao
# Healthy once migrations ran and the socket answers /healthz with "ok" (the engine in reach).
# Every 5 s: the first answer comes one interval after the start (--start-interval, which would
# shorten that, needs BuildKit or Docker 25; the legacy builder refuses the whole file).
HEALTHCHECK --interval=5s --timeout=5s --start-period=60s --retries=3 \
  CMD ["tao-server", "healthcheck"]
ENTRYPOINT ["dumb-init", "--", "tao-server"]
