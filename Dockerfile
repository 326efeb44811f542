# pgferry container image.
#   docker build -t pgferry .
#   docker run --rm -v "$PWD/pgferry.yaml:/etc/pgferry/pgferry.yaml:ro" pgferry check -c /etc/pgferry/pgferry.yaml
# The build stage runs the same scripts as CI (scripts/install-deps, scripts/build-release);
# the runtime stage holds the binary, the shared libraries it links and CA certificates (for
# sslmode=verify-full), and runs as an unprivileged user. The SQL it installs is compiled into
# the binary, so no other file is needed.

# ---- build -------------------------------------------------------------------------------------
FROM debian:bookworm AS build
WORKDIR /src
COPY . .
RUN ./scripts/install-deps \
 && rm -rf /var/lib/apt/lists/*
# Release build without tests, installed to /usr/local/bin and checked; scripts/test runs it too.
RUN ./scripts/build-release /usr/local build

# ---- runtime -----------------------------------------------------------------------------------
FROM debian:bookworm-slim
# Exactly the Debian 12 packages holding the libraries the binary is linked against (its
# DT_NEEDED entries: `readelf -d pgferry | grep NEEDED`, then `dpkg -S` on each file):
#   libpq.so.5 -> libpq5            libyaml-cpp.so.0.7 -> libyaml-cpp0.7
#   libspdlog.so.1.10 -> libspdlog1.10   libfmt.so.9 -> libfmt9
#   libstdc++.so.6 -> libstdc++6    (libgcc_s, libm, libc: libgcc-s1, libc6, already in the base)
#   libuv.so.1 -> libuv1           libsimdjson.so.14 -> libsimdjson14
#   libprometheus-cpp-core.so.1.0 -> libprometheus-cpp-core1.0   libcivetweb.so.1 -> libcivetweb1
# apt pulls in their own dependencies (OpenSSL, Kerberos, LDAP for libpq). When the binary links
# another library, add its package here: the ldd check below fails the image build, and the test
# suite's dockerfile_runtime_packages test fails, until then.
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      ca-certificates \
      libpq5 \
      libyaml-cpp0.7 \
      libspdlog1.10 \
      libfmt9 \
      libuv1 \
      libsimdjson14 \
      libprometheus-cpp-core1.0 \
      libcivetweb1 \
      libstdc++6 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/pgferry /usr/local/bin/pgferry
RUN if ldd /usr/local/bin/pgferry | grep 'not found'; then \
      echo "pgferry links a library this image lacks (above): add its package" >&2; exit 1; \
    fi \
 && pgferry --version \
 && useradd --system --create-home --home-dir /home/pgferry --shell /usr/sbin/nologin --uid 10001 pgferry \
 && mkdir -p /etc/pgferry

USER pgferry
WORKDIR /home/pgferry
# Metrics and health (`http.listen`); 127.0.0.1 would be unreachable from outside the container.
ENV PGFERRY_HTTP_LISTEN=0.0.0.0:9187
EXPOSE 9187
# Healthy while replication is (the running instance's /status: connected, no table stopped, lag
# under health.max_lag); configure with the same PGFERRY_* variables or PGFERRY_CONFIG as `run`.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s CMD ["pgferry", "status"]
ENTRYPOINT ["pgferry"]
CMD ["run"]
