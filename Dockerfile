# syntax=docker/dockerfile:1
# One image for every intyg service: `intyg serve <eid|issuer|verifier|wallet>` with the
# service's settings from INTYG_<SERVICE>_* variables and /run/secrets files
# (docker-compose.yml, docs/deployment.md). Build: docker build -t intyg:dev .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY intyg/ intyg/
COPY issuer/ issuer/
COPY verifier/ verifier/
COPY wallet/ wallet/
COPY eid/ eid/
# The credential types (intyg/_schemas links here; packaged as data of intyg).
COPY schemas/ schemas/
# The pinned versions of constraints.txt.
RUN python -m venv /opt/intyg \
    && /opt/intyg/bin/pip install -c constraints.txt .

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/intyg \
        --shell /usr/sbin/nologin intyg \
    && mkdir -p /var/lib/intyg/trust /var/lib/intyg/wallet \
    && chown -R intyg:intyg /var/lib/intyg
COPY --from=build /opt/intyg /opt/intyg
ENV PATH=/opt/intyg/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    INTYG_SERVE_HOST=0.0.0.0
USER intyg
WORKDIR /var/lib/intyg
EXPOSE 8000
ENTRYPOINT ["intyg"]
CMD ["serve", "--help"]
