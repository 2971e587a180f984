# syntax=docker/dockerfile:1
#
# refbridge as a container, for the long-running modes:
#
#   docker build -t refbridge .
#   docker run -d --init --name refbridge-sync \
#     -e GITHUB_TOKEN -e GITLAB_TOKEN \
#     -v refbridge-data:/data -v "$PWD/refbridge.yaml:/data/refbridge.yaml:ro" \
#     refbridge                                   # = refbridge sync --watch
#
#   docker run -d --init --name refbridge-backup -e GITHUB_TOKEN -v refbridge-backup:/data \
#     refbridge backup --backup-only --watch --storage /data/mirror-data
#
# docs/operations.md has the details. This image is NOT built in this project's CI (its machines
# have no Docker engine); what it runs inside, packing the four packages and installing the
# tarballs, is what test/e2e/packages.test.ts checks on every run.

# --- Stage 1: build the packages from this checkout and pack them as npm would publish them ------
FROM node:20-slim AS pack
WORKDIR /src
# The manifests first, so the dependency layer is reused until they change.
COPY package.json package-lock.json ./
COPY packages/core/package.json packages/core/
COPY packages/github/package.json packages/github/
COPY packages/gitlab/package.json packages/gitlab/
COPY packages/cli/package.json packages/cli/
COPY packages/action/package.json packages/action/
# No install scripts, and no optional dependencies: the Node 24 binary the tests use is not needed.
RUN npm ci --ignore-scripts --omit=optional --no-audit --no-fund
COPY tsconfig.base.json tsconfig.json ./
COPY packages packages
COPY ci-templates ci-templates
COPY scripts/copy-templates.mjs scripts/
RUN npx tsc -b packages/cli \
 && node scripts/copy-templates.mjs \
 && mkdir /tarballs \
 && npm pack --pack-destination /tarballs \
      -w packages/core -w packages/github -w packages/gitlab -w packages/cli

# --- Stage 2: the runtime: node, git, and the CLI installed from the tarballs ---------------------
FROM node:20-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Installed as one project (not `npm install -g`, which would look for @refbridge/core on the
# registry for each global package instead of using the tarball beside it). To install the
# published release instead, replace the COPY and this RUN with:
#   RUN mkdir /opt/refbridge && cd /opt/refbridge && npm install --omit=dev @refbridge/cli@0.1.0
COPY --from=pack /tarballs /tmp/refbridge-tarballs
RUN mkdir /opt/refbridge \
 && cd /opt/refbridge \
 && npm install --omit=dev --no-audit --no-fund /tmp/refbridge-tarballs/*.tgz \
 && ln -s /opt/refbridge/node_modules/.bin/refbridge /usr/local/bin/refbridge \
 && rm -rf /tmp/refbridge-tarballs \
 && npm cache clean --force \
 && refbridge --version

# The node image's unprivileged user. /data holds the config, the sync cache (the stored bases:
# keep it on a volume) and backups.
RUN mkdir /data && chown node:node /data
USER node
WORKDIR /data
ENV XDG_CACHE_HOME=/data/cache \
    NODE_ENV=production
VOLUME ["/data"]
# backup --watch --metrics-host 0.0.0.0 --metrics-port 9464 serves /metrics and /healthz here.
EXPOSE 9464

ENTRYPOINT ["refbridge"]
CMD ["sync", "--watch"]
