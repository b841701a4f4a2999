# syntax=docker/dockerfile:1
# Akash LLM Gateway container image, for linux/amd64 and linux/arm64. The release workflow
# (.github/workflows/release.yml) builds and pushes it on a version tag as
#   ghcr.io/akash-network/akash-llm-gateway:<version>
# By hand:
#   docker build -t ghcr.io/akash-network/akash-llm-gateway:0.1.0 .
#   docker run --rm -p 3000:3000 -e API_KEY="$(openssl rand -hex 24)" \
#     -e ENDPOINTS='[{"url":"https://..."}]' ghcr.io/akash-network/akash-llm-gateway:0.1.0
# The gateway drains in-flight requests on SIGTERM for SHUTDOWN_GRACE_MS (30 s by default): give
# `docker stop` at least that long (`docker stop -t 35`), its default is 10 s.

# The current Node.js LTS line (26, LTS since 2026-10-28). The major is pinned; each rebuild takes its
# latest patch release (security fixes). The code itself runs on Node 20.19 or newer.
ARG NODE_VERSION=26

# ---- build: all dependencies, compile TypeScript to dist/ ----
FROM node:${NODE_VERSION}-trixie-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No dependency needs an install script to compile with tsc.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- deps: production dependencies, with better-sqlite3's native module ----
FROM node:${NODE_VERSION}-trixie-slim AS deps
# better-sqlite3 (the embedded key store) downloads a prebuilt binary for this Node.js and platform, or
# compiles one when there is none; the compilers stay in this stage.
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# Install scripts run only for the packages package.json's allowScripts names (npm 11).
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# ---- runtime: production dependencies and compiled output only ----
FROM node:${NODE_VERSION}-trixie-slim AS runtime
ENV NODE_ENV=production PORT=3000
WORKDIR /app
COPY package.json package-lock.json ./
COPY --from=deps /app/node_modules ./node_modules
RUN mkdir -p logs data && chown node:node logs data
COPY --from=build /app/dist ./dist
# Code stays root-owned and read-only for the process; only logs/ (FILE_LOGGING=true) and data/ (the
# SQLite key store, DATABASE_URL=sqlite:data/gateway.db) are writable. Mount a volume on /app/data to
# keep keys and teams across container restarts.
VOLUME ["/app/data"]
USER node
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"
# Exec form: node is PID 1 and receives SIGTERM directly for a graceful shutdown.
CMD ["node", "dist/main.js"]
