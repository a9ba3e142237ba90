# The creditline worker image (used by docker-compose.yml).

# The compiled status machine (native/, Rust with PyO3), built from the locked crates into an abi3
# wheel; without it the Python core answers alone (the same answers, slower).
FROM rust:1.95-slim AS native
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /native
COPY native ./
RUN python3 -m venv /build && /build/bin/pip install --no-cache-dir maturin==1.16.0 \
    && /build/bin/maturin build --release --locked --out /wheels

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY --from=native /wheels /wheels
RUN pip install --no-cache-dir --no-deps /wheels/*.whl && rm -rf /wheels
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY streams ./streams
RUN pip install --no-cache-dir --no-deps . && useradd --uid 10001 --no-create-home creditline
USER creditline
ENTRYPOINT ["creditline"]
CMD ["worker"]
