# syntax=docker/dockerfile:1
# The labelling page (article Step 4): Voila serving voila-interface.ipynb.
# Slim Python, no TensorFlow: each labeller's kernel stays around 100 MB.
# The admin dashboard (docker-compose service `dashboard`) runs from this image too.
FROM python:3.11-slim-bookworm

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# 1. Dependencies (the `ui` and `plots` extras) at exactly the versions the tests run
#    with (constraints.txt; superintendent breaks at run time with another sqlmodel):
#    rebuilt only when pyproject.toml or constraints.txt changes. `verify` fails the
#    build if any installed package has another version than constraints.txt pins.
COPY pyproject.toml constraints.txt ./
COPY scripts/docker_requirements.py scripts/
RUN python3 scripts/docker_requirements.py requirements pyproject.toml ui plots > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt -c constraints.txt \
    && python3 scripts/docker_requirements.py verify constraints.txt \
    && python3 -c "import voila, superintendent, ipyannotations, ipykernel, psycopg2, matplotlib"

# 2. The project itself, with no dependency resolution at all.
COPY README.md voila-interface.ipynb admin-dashboard.ipynb ./
COPY src/ src/
RUN pip install --no-deps . && rm -rf build

# 3. Run as an unprivileged user with a writable home (Jupyter keeps its
#    runtime files there).
ARG APP_UID=1000
RUN if ! getent passwd "${APP_UID}" > /dev/null; then \
        useradd --create-home --uid "${APP_UID}" --user-group smartlabel; \
    fi
USER ${APP_UID}

EXPOSE 8866
# `smartlabel serve` runs Voila on VOILA_PORT (8866) with the VOILA_TOKEN from .env.
CMD ["smartlabel", "serve", "--host", "0.0.0.0"]
