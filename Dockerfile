# Peerline: one process serving webhooks, API and console; migrations run at start.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DATABASE_URL=sqlite:////data/peerline.db

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY ivr ./ivr
COPY app ./app
COPY migrations ./migrations
RUN pip install --upgrade pip && pip install -e . \
    && useradd --create-home --uid 10001 peerline \
    && mkdir -p /data && chown peerline /data

USER peerline
WORKDIR /data
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"
CMD ["sh", "-c", "peerline db upgrade && exec peerline serve --host 0.0.0.0 --port 8000"]
