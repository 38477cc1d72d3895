# syntax=docker/dockerfile:1
# The iflow2api gateway as an OCI image: one venv built in a first stage, copied into a clean second.
#
#   docker build -t iflow2api .
#   docker build --build-arg BASE=python:3.13-slim-bookworm -t iflow2api .
#
# BASE is any Debian-like image with `python3` (3.11 or newer) that can make a venv: python:*-slim
# in CI, or a base bootstrapped from Debian's own packages where no registry is reachable (see
# scripts/build-image). Both stages use it, so the venv's interpreter link is valid in the second.
ARG BASE=python:3.12-slim-bookworm

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# Only what the wheel is made of: pyproject.toml names README.md and LICENSE.
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
# The cluster extra (redis, psycopg) too, so that IFLOW2API_DATABASE_URL and IFLOW2API_REDIS_URL work
# without another image. pip compiles the bytecode here, so the read-only image never has to.
RUN python3 -m venv /opt/iflow2api \
    && /opt/iflow2api/bin/pip install ".[cluster]" \
    && /opt/iflow2api/bin/iflow2api --version

FROM ${BASE}
ARG UID=10001
ARG GID=10001
LABEL org.opencontainers.image.title="iflow2api" \
      org.opencontainers.image.description="OpenAI Chat Completions, Anthropic Messages and OpenAI Responses in front of a pool of upstream accounts" \
      org.opencontainers.image.licenses="MIT"
# A fixed numeric user, so volumes can be prepared for it (chown 10001:10001). /data also belongs to
# group 0 and is group-writable, for platforms that run the image as an arbitrary UID in group 0
# (OpenShift). The setgid bit keeps files made in it in that group.
RUN groupadd --gid "${GID}" app \
    && useradd --uid "${UID}" --gid "${GID}" --home-dir /home/app --no-create-home \
       --shell /usr/sbin/nologin app \
    && mkdir -p /data/iflow /home/app \
    && chown -R "${UID}:0" /data /home/app \
    && chmod -R 2770 /data \
    && chmod 0750 /home/app
COPY --from=build /opt/iflow2api /opt/iflow2api
COPY docker/healthcheck.py /opt/iflow2api/healthcheck.py
# Everything the gateway writes goes to /data (state, keys, the iFlow CLI's folder); nothing else is
# written, so the root filesystem can be read-only (with a tmpfs on /tmp for the odd library).
# The gateway listens on every address inside the container: it refuses to unless client keys exist
# (`iflow2api keys create NAME`, or IFLOW2API_API_KEYS).
ENV PATH=/opt/iflow2api/bin:$PATH \
    HOME=/home/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IFLOW2API_DATA_DIR=/data \
    IFLOW_HOME=/data/iflow \
    IFLOW2API_HOST=0.0.0.0 \
    IFLOW2API_PORT=8000 \
    IFLOW2API_OPEN_BROWSER=false
VOLUME ["/data"]
USER ${UID}:${GID}
EXPOSE 8000
# Python, not curl: slim images have none. /health answers 200 while the gateway runs, with or
# without a serving account, so a first start with no account is healthy and its page reachable.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/opt/iflow2api/bin/python", "/opt/iflow2api/healthcheck.py"]
CMD ["iflow2api", "serve"]
