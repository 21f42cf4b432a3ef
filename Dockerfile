# selu-serve container image.
#
#   docker build -t selu-serve .
#   docker run --rm -p 8000:8000 -p 8001:8001 -p 8002:8002 selu-serve
#
# The build stage runs deploy/test.sh: the very script CI (.ci/run) runs, so
# an image only exists when the whole test suite passes. The runtime stage
# installs the `runtime` group of deploy/install-deps.sh (the shared libraries
# selu-serve and selu-client link, checked by the deploy_check test); its size
# (about 144 MB uncompressed) is measured by deploy/check/image-size.sh.

# ---------------------------------------------------------------- build
FROM debian:12 AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /src
COPY deploy/install-deps.sh deploy/install-deps.sh
RUN deploy/install-deps.sh test \
    && rm -rf /var/lib/apt/lists/*
COPY . .
# install + configure + build + ctest (the same as .ci/run); the deploy check
# needs the npm registry for its linters and validators.
RUN deploy/test.sh \
    && mkdir -p /out \
    && strip -o /out/selu-serve build/release/server/selu-serve \
    && strip -o /out/selu-client build/release/client/selu-client

# -------------------------------------------------------------- runtime
FROM debian:12-slim AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY deploy/install-deps.sh /tmp/install-deps.sh
# Like the slim image's own path-excludes (docs, man pages, locales), dpkg
# leaves out the files of the runtime packages that neither binary loads:
# gRPC's insecure-only and channelz libraries, its protoc plugin support and
# libprotoc (9 MB). deploy/check-deploy.sh checks that no library in the ldd
# closure of selu-serve or selu-client matches these patterns, and
# deploy/check/image-size.sh measures the image with them. The rules are
# dropped after the install, so later packages install whole.
RUN printf 'path-exclude %s\n' \
        '/usr/lib/*/libgrpc_unsecure.so*' \
        '/usr/lib/*/libgrpc++_unsecure.so*' \
        '/usr/lib/*/libgrpcpp_channelz.so*' \
        '/usr/lib/*/libgrpc_plugin_support.so*' \
        '/usr/lib/*/libprotoc.so*' \
        >/etc/dpkg/dpkg.cfg.d/selu-runtime-excludes \
    && /tmp/install-deps.sh runtime \
    && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh /etc/dpkg/dpkg.cfg.d/selu-runtime-excludes \
    && groupadd --system --gid 10001 selu \
    && useradd --system --uid 10001 --gid selu --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin selu

# Stripped copies of build/release/{server/selu-serve,client/selu-client}
# (RelWithDebInfo: 22 MB each with debug info, about 1 MB without).
COPY --from=build /out/selu-serve /opt/selu/bin/selu-serve
COPY --from=build /out/selu-client /opt/selu/bin/selu-client
# Executable in git, so COPY keeps its mode.
COPY deploy/healthcheck.sh /opt/selu/bin/selu-healthcheck
COPY --chown=root:root models/digits_snn /models/digits_snn

LABEL org.opencontainers.image.title="selu-serve" \
      org.opencontainers.image.description="gRPC inference server (Open Inference Protocol v2) for self-normalizing neural networks" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:12-slim"

# Every option is also a SELU_* environment variable (the flag wins).
ENV PATH="/opt/selu/bin:${PATH}" \
    SELU_MODEL_REPOSITORY=/models \
    SELU_HTTP_ADDRESS=0.0.0.0:8000 \
    SELU_GRPC_ADDRESS=0.0.0.0:8001 \
    SELU_METRICS_ADDRESS=0.0.0.0:8002 \
    SELU_LOG_FORMAT=json \
    OMP_NUM_THREADS=1

# Nothing is written at run time: the root filesystem can be read-only.
USER 10001:10001
WORKDIR /models
EXPOSE 8000 8001 8002
STOPSIGNAL SIGTERM
# selu-healthcheck (deploy/healthcheck.sh, run against real servers by the
# deploy check) asks the server where it listens: --grpc-address in the
# arguments or SELU_GRPC_ADDRESS, port 0 included, plaintext or TLS, dialling
# 127.0.0.1 / [::1] (no "localhost" lookup).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["selu-healthcheck", "--timeout", "2"]
ENTRYPOINT ["selu-serve"]
CMD ["--model-repository", "/models"]
