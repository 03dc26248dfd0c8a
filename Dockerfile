# llmdemo in a container: docker build -t llmdemo . && docker run -p 7860:7860 -v llmdemo:/data llmdemo
# Hosted mode (visitors use the bundled models only), bound to 0.0.0.0 inside the container, port 7860.
# The same install as everywhere: requirements.txt. Put a reverse proxy in front for a public host
# (docs/hosting.md says what it must do).

# -- build: compilers only here (llama.cpp compiles from source)
FROM python:3.11-slim AS build
COPY packages.txt requirements.txt /tmp/
RUN apt-get update \
 && grep -v '^#' /tmp/packages.txt | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/*
# torch's CPU build: PyPI's Linux torch is the CUDA one (GB more); torch==2.13.0 matches 2.13.0+cpu
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN python -m venv /venv \
 && /venv/bin/pip install --no-cache-dir --upgrade pip \
 && /venv/bin/pip install --no-cache-dir --extra-index-url "$TORCH_INDEX" -r /tmp/requirements.txt

# -- run: no compilers, a user without rights, the model cache and the runs in a volume
FROM python:3.11-slim
RUN useradd --create-home --uid 1000 app && mkdir /data && chown app /data
COPY --from=build /venv /venv
WORKDIR /app
COPY --chown=app . .
USER app
ENV PATH=/venv/bin:$PATH \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    LLMDEMO_HOSTED=1 \
    LLMDEMO_CACHE=/data/cache \
    LLMDEMO_OUTPUT_DIR=/data/runs \
    HF_HOME=/data/hf
VOLUME /data
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:7860/', timeout=4)"
CMD ["python", "app.py"]
