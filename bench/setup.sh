#!/usr/bin/env bash
# Installs what `npm run bench` needs, idempotently: nginx and HAProxy (the baselines and the
# upstream), wrk (closed-loop throughput), vegeta (open-loop fixed-rate latency), openssl
# (bench certificates) and taskset (CPU pinning). Debian/Ubuntu; run as root or with sudo.
#
#   bash bench/setup.sh
#
# Node 24, Deno and Bun come from the project's own devDependencies (`npm ci`).
set -euo pipefail

VEGETA_VERSION="${VEGETA_VERSION:-v12.12.0}"
BIN_DIR="${BENCH_BIN_DIR:-/usr/local/bin}"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "bench/setup.sh: needs root (or sudo) to install Debian packages" >&2
    exit 1
  fi
fi

need_apt=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v taskset >/dev/null 2>&1 || need_apt+=(util-linux)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
go_bin=""
if command -v go >/dev/null 2>&1; then go_bin="$(command -v go)";
elif [ -x /usr/local/go/bin/go ]; then go_bin=/usr/local/go/bin/go; fi
if ! command -v vegeta >/dev/null 2>&1 && [ ! -x "$BIN_DIR/vegeta" ] && [ -z "$go_bin" ]; then
  need_apt+=(golang-go)
fi

if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "bench/setup.sh: installing ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # The Debian packages start system services on install where an init system runs; the benchmark
  # starts its own instances with its own configurations, so stop those (best effort).
  for svc in nginx haproxy; do
    if printf '%s\n' "${need_apt[@]}" | grep -qx "$svc"; then
      $SUDO service "$svc" stop >/dev/null 2>&1 || true
    fi
  done
fi

if ! command -v vegeta >/dev/null 2>&1 && [ ! -x "$BIN_DIR/vegeta" ]; then
  if [ -z "$go_bin" ]; then go_bin="$(command -v go)"; fi
  echo "bench/setup.sh: building vegeta $VEGETA_VERSION with $("$go_bin" version)"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (
    cd "$work"
    "$go_bin" mod init weft-bench-tools >/dev/null 2>&1
    printf 'package tools\n\nimport _ "github.com/tsenart/vegeta/v12/lib"\n' > tools.go
    # `go install pkg@version` also asks the proxy for the module's version list (to look for a
    # deprecation notice), which some proxies refuse; a throwaway module with a pinned require
    # does not need the list.
    GOFLAGS=-mod=mod "$go_bin" get "github.com/tsenart/vegeta/v12@$VEGETA_VERSION" >/dev/null 2>&1
    GOFLAGS=-mod=mod "$go_bin" build -o vegeta github.com/tsenart/vegeta/v12
    $SUDO install -m 0755 vegeta "$BIN_DIR/vegeta"
  )
fi

missing=()
for tool in nginx haproxy wrk vegeta openssl taskset; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || [ -x "$BIN_DIR/$tool" ] || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bench/setup.sh: still missing: ${missing[*]}" >&2
  exit 1
fi
echo "bench/setup.sh: ready (nginx, haproxy, wrk, vegeta, openssl, taskset)"
