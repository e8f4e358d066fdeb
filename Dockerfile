# The image every ESR service of docker-compose.yml runs: the `esr` CLI, so a service's
# command is an esr subcommand (["serve", ...], ["worker", "bots"], ...).
FROM node:22-slim AS assets
# the dashboard's charting library from the npm registry (never a CDN: agencies run air-gapped)
WORKDIR /assets
COPY deploy/dashboard/package.json deploy/dashboard/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md hms_esr_client.py ./
COPY esr ./esr
RUN pip install . && rm -rf /src
COPY --from=assets /assets/node_modules/uplot/dist/uPlot.iife.min.js /assets/node_modules/uplot/dist/uPlot.min.css /usr/share/esr/assets/
ENV ESR_ASSETS=/usr/share/esr/assets

RUN useradd --create-home --uid 10001 esr && mkdir -p /data && chown esr:esr /data
USER esr
WORKDIR /home/esr
ENV ESR_HOME=/data
VOLUME ["/data"]
EXPOSE 9700

ENTRYPOINT ["esr"]
CMD ["--help"]
