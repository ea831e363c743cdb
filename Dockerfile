# syntax=docker/dockerfile:1
# The AppStack operator image for users: the release binary built with a pinned
# toolchain, shipped alone on distroless (glibc + libgcc, no shell, no package
# manager), running as the non-root user 65532.
#
#   docker build -t appstack-operator:0.1.0 .
#
# The repository's own local cluster has no Docker engine; its image
# (appstack.local/appstack-operator:dev) is built by `e2e/images/build.sh operator`.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# The whole workspace is needed to resolve it (members e2e/shop and e2e/suite);
# .dockerignore keeps target/, .git and local caches out of the context.
COPY . .
# Cache mounts keep the registry and target/ between builds without baking them
# into a layer; the binary is copied out because target/ is not in the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p appstack --bin appstack-operator \
 && install -D -m 0755 target/release/appstack-operator /out/appstack-operator

# Same Debian release as the builder, so the binary's glibc matches.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="appstack-operator" \
      org.opencontainers.image.description="Kubernetes operator: stateless components autoscaled, state in Redis and PostgreSQL, wired together" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/appstack-dev/appstack"
COPY --from=build /out/appstack-operator /usr/local/bin/appstack-operator
# Numeric, so Kubernetes can check runAsNonRoot without a passwd lookup.
USER 65532:65532
# /metrics, /healthz, /readyz
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/appstack-operator"]
CMD ["run"]
