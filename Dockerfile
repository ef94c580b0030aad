# syntax=docker/dockerfile:1

# ---- builder: wheels of authapi and its dependencies, installed into /opt/venv ----
FROM python:3.12-slim AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
WORKDIR /build

# The dependencies first, in their own layer: it is rebuilt only when pyproject.toml
# changes, not on every source edit.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && /opt/venv/bin/pip install -r requirements.txt

# Then the project itself, built as a wheel (the migrations ship inside it).
COPY README.md ./
COPY src ./src
COPY migrations ./migrations
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/venv/bin/pip install --no-deps /wheels/authapi-*.whl


# ---- runtime: the venv and nothing else; no compilers, no sources ----
FROM python:3.12-slim

RUN groupadd --system --gid 10001 authapi \
    && useradd --system --uid 10001 --gid authapi --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin authapi \
    && mkdir -p /data \
    && chown authapi:authapi /data \
    && chmod 700 /data

COPY --from=builder /opt/venv /opt/venv

ENV PATH="/opt/venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AUTHAPI_DATA_DIR=/data

# Keys generated in development mode and the embedded SQLite database live here.
VOLUME ["/data"]
# Settings also read a `.env` from the working directory: an empty one by default.
WORKDIR /app
# Numeric, so that orchestrators can check it is not root (runAsNonRoot).
USER 10001:10001

EXPOSE 8000

# slim has no curl: ask with Python. urlopen raises (exit 1) on errors and non-2xx.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# Migrate (a no-op when current), then replace the shell with the server so that it
# is PID 1 and gets SIGTERM directly.
CMD ["/bin/sh", "-c", "authapi migrate && exec authapi serve --host 0.0.0.0 --port 8000"]
