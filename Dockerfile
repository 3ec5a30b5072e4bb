# pgmux container image.
#
#   docker build -t pgmux .
#   docker run --rm -p 6543:6543 -e DATABASE_URL=postgres://app:secret@db:5432/app pgmux
#
# Configuration comes from the environment (every setting under its upper-case name, DATABASE_URL, and the
# DB_HOST/DB_USER/... names of the common PgBouncer images), or from a mounted file:
#   -v ./pgmux.yaml:/etc/pgmux/pgmux.yaml:ro -e PGMUX_CONFIG=/etc/pgmux/pgmux.yaml
#   -v ./pgbouncer:/etc/pgbouncer:ro pgmux node dist/src/main.js --pgbouncer-ini /etc/pgbouncer/pgbouncer.ini
# The image holds no config file of its own, so nothing but what you pass in defines databases or users.
#
# test/container.test.ts parses this file: it runs the CMD below exactly (from a directory laid out like /app)
# and the HEALTHCHECK command against the process it started.
#
# Base image: node:22-bookworm-slim, the maintained LTS line (Node 20 is end of life; `npm run test:node` runs the
# test suite on 22 and 24). At release time, pin both FROM lines by digest, node:22-bookworm-slim@sha256:<digest>
# (`docker buildx imagetools inspect node:22-bookworm-slim` gives it), so a rebuild gets the same image. The
# repository leaves the tag unpinned because a digest can only be resolved from Docker Hub, which the machines this
# is developed and tested on cannot reach: a digest written here would be unverified.

# ---- build: dev dependencies, TypeScript compile ------------------------------------------------------------------
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the package's prepare script (tsc, for `npx pgmux` from a checkout) runs below, once src is here.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies and dist/ only -----------------------------------------------------------
FROM node:22-bookworm-slim
# METRICS_ADDR on all interfaces: probes from outside the container (kubelet, other compose services) reach /healthz.
ENV NODE_ENV=production \
    LISTEN_ADDR=0.0.0.0 \
    LISTEN_PORT=6543 \
    METRICS_ADDR=0.0.0.0 \
    METRICS_PORT=9127
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The node image's unprivileged user (uid 1000); pgmux needs no privileges (ports above 1024, no files written).
USER node
EXPOSE 6543 9127
# Liveness from pgmux's own endpoint on the metrics port (slim images have no curl). /healthz answers 200 while
# the process runs, draining included; /readyz (503 while an upstream is unreachable) suits readiness probes.
# METRICS_PORT=0 turns the endpoint off, and this check with it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.METRICS_PORT || 9127) + '/healthz', { signal: AbortSignal.timeout(2500) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Signals: node runs as PID 1 and pgmux installs its own SIGTERM/SIGINT handlers (src/main.ts), so `docker stop`
# drains: new connections are refused, clients between transactions get 57P01, open transactions get up to
# SHUTDOWN_TIMEOUT (30s) to finish. Give docker stop longer than that (docker stop -t 35, compose
# stop_grace_period: 35s), or lower SHUTDOWN_TIMEOUT. No init (tini/--init) is needed: pgmux starts no child
# processes, so there are no zombies to reap, and PID 1's default-ignore of signals does not matter to a process
# that handles them. A second signal exits at once.
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/main.js"]
