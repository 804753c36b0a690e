# syntax=docker/dockerfile:1
# One image for all five flexmig apps; the command picks the app:
#   docker run IMAGE node dist/apps/scheduler/main.js
# The stage agent-qemu is the agent for real VMs (driver=qemu): the same image plus QEMU and binutils:
#   docker build -t flexmig:TAG .   and   docker build --target agent-qemu -t flexmig:TAG-qemu .
# (the chart runs flexmig:TAG-qemu for the agents when agent.driver=qemu)
# Apps: inventory (3001), scheduler (3002), cpu-compat (3003), console (3000, the one URL), agent (3010, health/metrics only).
# Configuration is by environment variables only (see .env.example).

ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: full dependency tree, type-check and bundle every app into dist/apps/<app>/main.js, and the web
# console's files into dist/apps/console-web (the console serves them at /) ----
FROM ${NODE_IMAGE} AS build
WORKDIR /src
ENV NX_DAEMON=false \
    NX_NO_CLOUD=true \
    NX_SKIP_NX_CACHE=true
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build \
 && test -f dist/apps/inventory/main.js \
 && test -f dist/apps/scheduler/main.js \
 && test -f dist/apps/cpu-compat/main.js \
 && test -f dist/apps/agent/main.js \
 && test -f dist/apps/console/main.js \
 && test -f dist/apps/console-web/index.html

# ---- prod-deps: production dependencies only (the bundles leave every npm package external) ----
FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# ---- runtime ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=prod-deps --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /src/package.json ./package.json
COPY --from=build --chown=root:root /src/dist/apps ./dist/apps
# The `node` user (uid 1000) of the official image; the code stays root-owned and read-only to it.
USER node
# HTTP APIs (inventory, scheduler, cpu-compat), the agent's health/metrics port, the agent's migration port.
EXPOSE 3001 3002 3003 3010 49152
# No HEALTHCHECK here: the port depends on the app the command starts. docker-compose.yml and the Helm
# chart probe each service's /health/ready and /health/live instead.
CMD ["node", "dist/apps/inventory/main.js"]

# ---- agent-qemu: the agent with the qemu driver (DRIVER=qemu), as the Helm chart runs it on hypervisor nodes ----
# Debian's QEMU (qemu-system-x86: qemu-system-x86_64 with its SeaBIOS/iPXE firmware) and binutils, which
# assemble the guest workload image (dist/apps/agent/workload.S) at run time. Runs as root in the chart:
# QEMU's run dir and the step ledger are on the node (hostPath), /dev/kvm is root:kvm (deploy/README.md).
FROM runtime AS agent-qemu
USER root
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-system-x86 binutils \
 && rm -rf /var/lib/apt/lists/* \
 && qemu-system-x86_64 --version && as --version >/dev/null && objcopy --version >/dev/null
EXPOSE 3010 49152-49215
CMD ["node", "dist/apps/agent/main.js"]

# ---- the default target (docker build without --target) stays the runtime image above ----
FROM runtime
