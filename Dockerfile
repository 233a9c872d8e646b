# Peerline: one process serving webhooks, API and console; migrations run at start.
#
# Installed from requirements.lock with --require-hashes: the image gets exactly the versions
# the test suite passed with, and pip refuses any file whose hash differs. The project itself
# is not pip-installed (that would fetch a build backend without a hash): it runs from /app,
# and `peerline` is a two-line wrapper around `python -m app.cli`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    ENVIRONMENT=production \
    LOG_FORMAT=json \
    DATABASE_URL=sqlite:////data/peerline.db

WORKDIR /app
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock \
    && printf '#!/bin/sh\nexec python -m app.cli "$@"\n' > /usr/local/bin/peerline \
    && chmod 0755 /usr/local/bin/peerline \
    && useradd --create-home --uid 10001 --user-group peerline \
    && mkdir -p /data && chown peerline:peerline /data

COPY alembic.ini ./
COPY ivr ./ivr
COPY app ./app
COPY migrations ./migrations

# never root at run time: the code and the installed packages are root's and read-only to it
USER 10001:10001
WORKDIR /data
EXPOSE 8000 9100
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"
CMD ["sh", "-c", "peerline db upgrade && exec peerline serve --host 0.0.0.0 --port 8000"]
