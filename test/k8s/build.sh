#!/usr/bin/env bash
# Build a real kube-apiserver, kube-controller-manager, kubectl and etcd from the Go module
# proxy (no Docker, no release downloads), cached by version outside the repository.
#
#   test/k8s/build.sh [K8S_VERSION]        # default below; e.g. test/k8s/build.sh v1.36.3
#   ETCD_VERSION=v3.6.16 test/k8s/build.sh
#   WEFT_K8S_CACHE=/some/dir test/k8s/build.sh
#   K8S_BINARIES="kubelet kube-scheduler kube-proxy" test/k8s/build.sh   # other cmd/ binaries
#                                          # (test/k8s/build-node.sh does this for the node)
#
# Output: ${WEFT_K8S_CACHE:-$HOME/.cache/weft/k8s}/<version>/bin/{kube-apiserver,
# kube-controller-manager,kubectl,etcd}. Binaries that already exist are not rebuilt, so a
# second run takes seconds. The last line printed on stdout is the bin directory, so
# `BIN=$(test/k8s/build.sh | tail -n1)` works. See docs/k8s-test-env.md.
#
# How: k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/client-go, ...) at
# v0.0.0 and replaces them with ./staging paths, so `go install k8s.io/kubernetes/...@v1.x`
# is refused. A throwaway wrapper module requires k8s.io/kubernetes vX.Y.Z and replaces every
# staging module it requires with the published v0.Y.Z. etcd's server module has replace lines
# too (ignored in a dependency), so it is built the same way from a wrapper module.
set -euo pipefail

DEFAULT_K8S_VERSION=v1.36.3
DEFAULT_ETCD_VERSION=v3.6.16

K8S_VERSION=${1:-${K8S_VERSION:-$DEFAULT_K8S_VERSION}}
ETCD_VERSION=${ETCD_VERSION:-$DEFAULT_ETCD_VERSION}
CACHE=${WEFT_K8S_CACHE:-$HOME/.cache/weft/k8s}
BIN=$CACHE/$K8S_VERSION/bin

log() { printf '[k8s/build] %s\n' "$*" >&2; }
die() { printf '[k8s/build] error: %s\n' "$*" >&2; exit 1; }

# The go.mod that MODULE was published with at VERSION (downloaded into the module cache).
published_gomod() {
  local info gomod
  info=$("$GO" mod download -json "$1@$2") || die "the module proxy does not serve $1@$2"
  gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")
  [[ -f $gomod ]] || die "could not find the go.mod of $1@$2"
  printf '%s\n' "$gomod"
}

# The Go version a go.mod asks for.
go_directive() { awk '$1 == "go" { print $2; exit }' "$1"; }

[[ $K8S_VERSION =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "version must look like v1.36.3, got '$K8S_VERSION'"
K8S_MINOR=${BASH_REMATCH[1]}
K8S_PATCH=${BASH_REMATCH[2]}
STAGING_VERSION=v0.$K8S_MINOR.$K8S_PATCH
[[ $ETCD_VERSION =~ ^v3\.[0-9]+\.[0-9]+$ ]] || die "ETCD_VERSION must look like v3.6.16, got '$ETCD_VERSION'"

GO=${GO:-$(command -v go || true)}
[[ -n $GO ]] || GO=/usr/local/go/bin/go
[[ -x $GO ]] || die "no Go toolchain found (set GO=/path/to/go)"
export GOFLAGS=${GOFLAGS:-} GOTOOLCHAIN=${GOTOOLCHAIN:-local} CGO_ENABLED=0
NICE=(nice -n "${WEFT_BUILD_NICE:-10}")

mkdir -p "$BIN"

want=()
# K8S_BINARIES: which k8s.io/kubernetes/cmd/ binaries (all build with CGO_ENABLED=0, as
# upstream's release builds them; kubelet included)
for b in ${K8S_BINARIES:-kube-apiserver kube-controller-manager kubectl}; do
  [[ $b =~ ^[a-z-]+$ ]] || die "bad binary name '$b' in K8S_BINARIES"
  [[ -x $BIN/$b ]] || want+=("$b")
done
etcd_stamp=$BIN/.etcd-version
need_etcd=1
if [[ -x $BIN/etcd && -f $etcd_stamp && $(cat "$etcd_stamp") == "$ETCD_VERSION" ]]; then need_etcd=0; fi

if [[ ${#want[@]} -eq 0 && $need_etcd -eq 0 ]]; then
  log "cached: kubernetes $K8S_VERSION, etcd $ETCD_VERSION in $BIN"
  echo "$BIN"
  exit 0
fi

log "using $("$GO" version)"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/weft-k8s-build.XXXXXX")
# on failure, leave no empty version dir behind
trap 'rm -rf "$WORK"; rmdir "$BIN" "$CACHE/$K8S_VERSION" 2>/dev/null || true' EXIT

# --- Kubernetes -------------------------------------------------------------------------
if [[ ${#want[@]} -gt 0 ]]; then
  log "building kubernetes $K8S_VERSION: ${want[*]} (staging modules at $STAGING_VERSION)"
  mod=$WORK/kubernetes
  mkdir -p "$mod"
  cd "$mod"
  # The tag's own go.mod lists the staging modules (k8s.io/X => ./staging/src/k8s.io/X).
  gomod=$(published_gomod k8s.io/kubernetes "$K8S_VERSION")
  gover=$(go_directive "$gomod")
  have=$("$GO" env GOVERSION | sed 's/^go//')
  if [[ $(printf '%s\n%s\n' "$gover" "$have" | sort -V | head -n1) != "$gover" ]]; then
    die "k8s.io/kubernetes@$K8S_VERSION needs Go >= $gover, this is Go $have"
  fi
  godebug=$(awk '$1 == "godebug" { print; exit }' "$gomod")
  # keep the tag's go/godebug lines so runtime defaults match an upstream build
  cat >go.mod <<EOF
module weft.local/k8s-build

go $gover

${godebug}
EOF
  replaced=$(awk '/^replace[[:space:]]*\(/ { inr = 1; next } inr && /^\)/ { inr = 0 }
                  inr && $2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }
                  /^replace[[:space:]]+k8s\.io\// && $4 ~ /^\.\/staging\// { print $2 }' "$gomod")
  # only the staging modules the tag actually requires (some, e.g. sample-cli-plugin, are
  # replaced but never required, and not every proxy serves them)
  required=$(awk '/^require[[:space:]]*\(/ { inr = 1; next } inr && /^\)/ { inr = 0 }
                  inr && $2 == "v0.0.0" { print $1 }' "$gomod")
  staging=$(comm -12 <(sort -u <<<"$replaced") <(sort -u <<<"$required"))
  [[ -n $staging ]] || die "found no staging modules in $gomod"
  {
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    while read -r m; do echo "	$m => $m $STAGING_VERSION"; done <<<"$staging"
    echo ")"
  } >>go.mod
  log "wrapper module replaces $(wc -l <<<"$staging") staging modules with $STAGING_VERSION"

  pkgs=()
  for b in "${want[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  log "resolving dependencies (go get)..."
  # @version matters: a bare `go get pkg` would upgrade k8s.io/kubernetes to the latest tag
  "$GO" get "${pkgs[@]/%/@$K8S_VERSION}" >&2 || die "go get failed (is every staging module at $STAGING_VERSION on the proxy?)"
  got=$("$GO" list -m -f '{{.Version}}' k8s.io/kubernetes)
  [[ $got == "$K8S_VERSION" ]] || die "wrapper module resolved k8s.io/kubernetes $got, wanted $K8S_VERSION"

  # version stamping, as hack/lib/version.sh does
  # the tag's time, from the .info file the module cache keeps beside its go.mod
  date=$(sed -n 's/.*"Time": *"\([^"]*\)".*/\1/p' "${gomod%.mod}.info" 2>/dev/null | head -n1)
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$K8S_MINOR"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=${date:-unknown}"
  done

  out=$WORK/out
  mkdir -p "$out"
  log "compiling ${want[*]} (this takes a while on a cold cache; see docs/k8s-test-env.md)"
  start=$SECONDS
  "${NICE[@]}" "$GO" build -trimpath -ldflags "$ldflags" -o "$out/" "${pkgs[@]}" >&2
  for b in "${want[@]}"; do mv -f "$out/$b" "$BIN/$b"; done
  log "kubernetes binaries built in $((SECONDS - start))s"
fi

# --- etcd -------------------------------------------------------------------------------
if [[ $need_etcd -eq 1 ]]; then
  log "building etcd $ETCD_VERSION"
  mod=$WORK/etcd
  mkdir -p "$mod"
  cd "$mod"
  gomod=$(published_gomod go.etcd.io/etcd/server/v3 "$ETCD_VERSION")
  gover=$(go_directive "$gomod")
  cat >go.mod <<EOF
module weft.local/etcd-build

go ${gover:-1.24}

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
  "$GO" get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2 || die "go get of etcd failed"
  start=$SECONDS
  "${NICE[@]}" "$GO" build -trimpath -ldflags "-s -w" -o "$WORK/etcd.bin" go.etcd.io/etcd/server/v3 >&2
  mv -f "$WORK/etcd.bin" "$BIN/etcd"
  echo "$ETCD_VERSION" >"$etcd_stamp"
  log "etcd built in $((SECONDS - start))s"
fi

log "done: kubernetes $K8S_VERSION, etcd $ETCD_VERSION"
echo "$BIN"
