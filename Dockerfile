# Videoflix back-end: one process serves the API and supervises the FFmpeg pool.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# tini reaps children and forwards SIGTERM. No Debian FFmpeg: the pip FFmpeg (imageio-ffmpeg) encodes and
# PyAV (av, with FFmpeg's libraries in its wheel) probes.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system videoflix \
    && useradd --system --gid videoflix --home-dir /app --shell /usr/sbin/nologin videoflix

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --chown=videoflix:videoflix server.py config.yaml pyproject.toml ./
COPY --chown=videoflix:videoflix core/ core/
COPY --chown=videoflix:videoflix handlers/ handlers/
COPY --chown=videoflix:videoflix models/ models/
COPY --chown=videoflix:videoflix services/ services/
COPY --chown=videoflix:videoflix transcode/ transcode/
COPY --chown=videoflix:videoflix templates/ templates/
COPY --chown=videoflix:videoflix web/ web/

RUN mkdir -p /data/media && chown -R videoflix:videoflix /data
VOLUME ["/data/media"]

ENV HOST=0.0.0.0 \
    PORT=8000 \
    MEDIA_ROOT=/data/media \
    DEBUG=0

USER videoflix
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:%s/api/health/' % os.environ.get('PORT', '8000'), timeout=4); sys.exit(0)"]

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "server.py"]
