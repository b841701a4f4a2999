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

# ---- runtime: production dependencies and compiled output only ----
FROM node:${NODE_VERSION}-trixie-slim AS runtime
ENV NODE_ENV=production PORT=3000
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && npm cache clean --force \
  && mkdir -p logs \
  && chown node:node logs
COPY --from=build /app/dist ./dist
# Code stays root-owned and read-only for the process; only logs/ (FILE_LOGGING=true) is writable.
USER node
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/health').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"
# Exec form: node is PID 1 and receives SIGTERM directly for a graceful shutdown.
CMD ["node", "dist/main.js"]
