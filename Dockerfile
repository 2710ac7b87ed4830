# The Rill broker as a container image.
#
#   docker build -t rill .
#   docker run --rm -p 50051:50051 -v rill-data:/data rill
#
# Settings come from RILL_* variables or from flags after the image name (flags win), e.g.
#   docker run --rm -p 50051:50051 -v rill-data:/data rill --retention-ms 86400000
#
# Node runs as PID 1 with no init: the broker installs SIGTERM/SIGINT handlers before it opens its
# logs (a PID 1 without a handler would ignore the signal) and drains on SIGTERM, and it starts no
# child processes, so there are no zombies to reap. `docker run --init` works too if wanted.

ARG NODE_VERSION=20

# --- build: generate the protobuf code and compile the TypeScript ------------------------------
FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# Scripts are skipped here because `prepare` (generate + build) needs the sources copied below;
# the next RUN does the same two steps.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY buf.yaml buf.gen.yaml tsconfig.json tsconfig.build.json ./
COPY proto proto
COPY scripts scripts
COPY server/src server/src
COPY clients/ts/src clients/ts/src
COPY clients/cli/src clients/cli/src
RUN npm run generate && npm run build

# --- runtime: production dependencies, the compiled code and the `rill` command ----------------
FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /src/dist dist
COPY bin bin
# The official image's unprivileged `node` user, by number so Kubernetes' runAsNonRoot can verify it.
RUN mkdir /data && chown 1000:1000 /data
USER 1000:1000
VOLUME /data
# Non-loopback listen address (the broker's default is 127.0.0.1); logs as JSON lines.
# Without TLS the broker refuses a non-loopback address unless told it is on purpose: the image
# says so (RILL_INSECURE), for a network where a proxy or service mesh terminates (m)TLS, or a
# trusted host network. To serve TLS itself, mount the PEM files and set
# RILL_TLS_CERT/RILL_TLS_KEY (and RILL_TLS_CLIENT_CA, RILL_REQUIRE_CLIENT_CERT=true for mutual TLS)
# and RILL_INSECURE=false. See the README's "Security: TLS".
ENV RILL_LISTEN=0.0.0.0:50051 \
    RILL_INSECURE=true \
    RILL_DATA_DIR=/data \
    RILL_LOG_PRETTY=false
EXPOSE 50051
# The broker drains on SIGTERM (health NOT_SERVING, streams ended with UNAVAILABLE, logs fsynced)
# within shutdown.timeout.ms; give it longer than that to stop: `docker stop -t 30`.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "bin/rill.js", "broker"]
