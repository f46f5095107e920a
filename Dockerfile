# syntax=docker/dockerfile:1
# Small non-root image of mfa-gateway. Node 24 is an LTS line the gateway is tested on (20, 22, 24).
# The default configuration is production-shaped (config/docker.yaml: issuer and JWKS URL from the
# environment, no shared secret); the demo runs only when asked for (docs/container.md):
#   docker run -e MFA_GATEWAY_CONFIG=config/gateway.yaml -p 8080:8080 mfa-gateway serve --demo

FROM node:24-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 compiles its native addon when no prebuilt binary matches.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev

FROM node:24-bookworm-slim
# The commit this image is built from, for mfa_gateway_build_info{commit}:
#   docker build --build-arg MFA_GATEWAY_COMMIT=$(git rev-parse HEAD) -t mfa-gateway .
ARG MFA_GATEWAY_COMMIT=unknown
# MFA_GATEWAY_CONFIG is the policy every command reads unless given --config: `serve` and the
# HEALTHCHECK below read the same file, so the probe always asks the admin port that file names.
ENV NODE_ENV=production MFA_GATEWAY_COMMIT=$MFA_GATEWAY_COMMIT MFA_GATEWAY_CONFIG=config/docker.yaml
WORKDIR /app
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist/src ./dist/src
COPY --chown=root:root package.json ./
COPY --chown=root:root config ./config
# State (SQLite file) and keys live in a volume owned by the unprivileged user (uid 1000); code stays
# read-only. A volume owned by someone else is refused with the uid and the fix (chown or --user).
RUN mkdir -p /app/data && chown node:node /app/data
VOLUME ["/app/data"]
USER node
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "dist/src/cli/main.js", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["serve"]
