# The gateway in a container: `docker build -t gateway .`, then
#   docker run -p 8080:8080 -v ./routes.d:/app/routes.d gateway
# /app is the config folder (gateway.yaml, routes.d/, plugins/, schemas/): mount over any of
# them and edits go live. Without a registry: build with --build-arg BASE=<a local image with
# python3 and python3-venv> (see README, "Run it in a container").
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The dependencies first (their own layer: rebuilt only when pyproject.toml changes), with the
# `otel` extra (traces, imported only when OTEL_EXPORTER_OTLP_ENDPOINT is set) ...
COPY pyproject.toml ./
RUN python3 -m venv /opt/venv \
 && python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print("\n".join(p["dependencies"] + p["optional-dependencies"]["otel"]))' > requirements.txt \
 && /opt/venv/bin/pip install -q "setuptools>=69" -r requirements.txt
# ... then the package itself (not editable: the image holds no source tree).
COPY README.md ./
COPY gateway ./gateway
# Bytecode checked by hash, not mtime: COPY --from resets mtimes, which would make every .pyc
# stale (recompiled at each start, about a second).
RUN /opt/venv/bin/pip install -q --no-deps --no-build-isolation . \
 && /opt/venv/bin/pip uninstall -q -y pip setuptools \
 && /opt/venv/bin/python -m compileall -q -f -j 0 --invalidation-mode checked-hash /opt/venv/lib

FROM ${BASE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_CONFIG_DIR=/app \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_WORKERS=auto \
    PORT=8080
RUN groupadd --gid 10001 gateway \
 && useradd --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin gateway
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The default config; read-only for the gateway user (it never writes its config folder).
COPY gateway.yaml ./
COPY routes.d ./routes.d
COPY plugins ./plugins
COPY schemas ./schemas
USER 10001:10001
EXPOSE 8080
# /health is liveness (the process serves); /ready also checks the store (probes: README).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; port = os.environ.get('GATEWAY_PORT') or os.environ.get('PORT') or '8080'; urllib.request.urlopen(f'http://127.0.0.1:{port}/health', timeout=2)"]
# Exec form: the gateway is PID 1 and gets SIGTERM itself (it drains, finishes requests in flight,
# then exits 0). `docker run IMAGE check` runs another subcommand.
ENTRYPOINT ["gateway"]
CMD ["serve"]
