# syntax=docker/dockerfile:1
# Small non-root image of mfa-gateway. Node 24 is an LTS line the gateway is tested on (20, 22, 24).

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
ENV NODE_ENV=production MFA_GATEWAY_COMMIT=$MFA_GATEWAY_COMMIT
WORKDIR /app
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist/src ./dist/src
COPY --chown=root:root package.json ./
COPY --chown=root:root config ./config
# State (SQLite file) and keys live in a volume owned by the unprivileged user; code stays read-only.
RUN mkdir -p /app/data && chown node:node /app/data
VOLUME ["/app/data"]
USER node
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9090/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["serve", "--config", "config/gateway.yaml"]
