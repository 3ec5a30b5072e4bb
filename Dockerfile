# Sketch (a later issue hardens it): build, then a slim runtime with production dependencies only.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --no-audit --no-fund
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim
ENV NODE_ENV=production LISTEN_ADDR=0.0.0.0 LISTEN_PORT=6543
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY config ./config
USER node
EXPOSE 6543 9127
STOPSIGNAL SIGTERM
CMD ["node", "dist/src/main.js"]
