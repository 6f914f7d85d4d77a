#!/usr/bin/env bash
# Build the Gateway API conformance suite and the images its manifests name, from the Go module
# proxy, cached by version outside the repository like test/k8s/build.sh and build-node.sh:
#
#   bin/gateway-api-conformance.test   `go test -c` of test/k8s/conformance (the suite's
#                                      TestConformance, plus -weft.images to rewrite its images)
#   images/oci (an OCI layout), tags:  echo-basic     sigs.k8s.io/gateway-api/conformance/echo-basic
#                                                     (registry.k8s.io/gateway-api/echo-basic upstream)
#                                      echo-advanced  Istio's echo server and client, which upstream's
#                                                     echo-advanced image is (gcr.io/istio-release/app)
#                                      coredns        build-node.sh's CoreDNS (the base manifests'
#                                                     registry.k8s.io/coredns/coredns, for UDPRoute)
#   images/images.txt                  upstream repository, layout tag, name in the node's registry
#
#   test/k8s/build-conformance.sh
#   ISTIO_ECHO_VERSION=v0.0.0-... test/k8s/build-conformance.sh
#
# Output: ${WEFT_CONFORMANCE_CACHE:-$HOME/.cache/weft/conformance}/<gateway-api version>/. The
# version is the one test/k8s/conformance/go.mod requires, which must be the one whose CRDs the
# tests install (test/k8s/gateway-api.ts). Stamps decide what is rebuilt: the test binary on
# its sources and Go version, the images on their recipe and versions. The last line on stdout
# is the output directory. See docs/design/conformance.md.
set -euo pipefail

# Istio publishes no semver tags, so the module proxy serves it only at pseudo-versions; this
# is the newest one served here (upstream's echo-advanced is Istio's 1.21.2 app image).
DEFAULT_ISTIO_ECHO_VERSION=v0.0.0-20260827124520-eed52ebb66ad
IMAGES_VERSION=2   # bump when the image recipe below changes

ISTIO_ECHO_VERSION=${ISTIO_ECHO_VERSION:-$DEFAULT_ISTIO_ECHO_VERSION}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$here/conformance

log() { printf '[k8s/build-conformance] %s\n' "$*" >&2; }
die() { printf '[k8s/build-conformance] error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=oci.sh
. "$here/oci.sh"

[[ $ISTIO_ECHO_VERSION =~ ^v0\.0\.0-[0-9]{14}-[0-9a-f]{12}$ ]] || die "ISTIO_ECHO_VERSION must be a pseudo-version like $DEFAULT_ISTIO_ECHO_VERSION, got '$ISTIO_ECHO_VERSION'"
for c in umoci sha256sum; do command -v "$c" >/dev/null || die "missing $c: apt-get install -y umoci coreutils"; done

GO=${GO:-$(command -v go || true)}
[[ -n $GO ]] || GO=/usr/local/go/bin/go
[[ -x $GO ]] || die "no Go toolchain found (set GO=/path/to/go)"
export GOFLAGS=${GOFLAGS:-} GOTOOLCHAIN=${GOTOOLCHAIN:-local} CGO_ENABLED=0
NICE=(nice -n "${WEFT_BUILD_NICE:-10}")

VERSION=$(cd "$SRC" && "$GO" list -m -f '{{.Version}}' sigs.k8s.io/gateway-api/conformance) || die "cannot read the suite's version from $SRC/go.mod"
crds=$(sed -n 's/^export const GATEWAY_API_VERSION = "\(v[^"]*\)";$/\1/p' "$here/gateway-api.ts")
[[ $VERSION == "$crds" ]] || die "test/k8s/conformance/go.mod requires the suite at $VERSION but test/k8s/gateway-api.ts installs the CRDs of $crds: change both"

OUT=${WEFT_CONFORMANCE_CACHE:-$HOME/.cache/weft/conformance}/$VERSION
mkdir -p "$OUT/bin"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/weft-conformance-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# --- the suite ----------------------------------------------------------------------------
test_stamp="$(cat "$SRC"/go.mod "$SRC"/go.sum "$SRC"/*.go | sha256sum | cut -c1-16) $("$GO" env GOVERSION)"
if [[ ! -x $OUT/bin/gateway-api-conformance.test || $(cat "$OUT/bin/.test-stamp" 2>/dev/null) != "$test_stamp" ]]; then
  log "building the conformance suite $VERSION (go test -c of test/k8s/conformance)"
  start=$SECONDS
  (cd "$SRC" && "${NICE[@]}" "$GO" test -c -trimpath -ldflags "-s -w" -o "$WORK/gateway-api-conformance.test" .) >&2 || die "go test -c failed"
  mv -f "$WORK/gateway-api-conformance.test" "$OUT/bin/"
  echo "$test_stamp" >"$OUT/bin/.test-stamp"
  log "suite built in $((SECONDS - start))s"
fi

# --- images -------------------------------------------------------------------------------
coredns_bin=$("$here/build-node.sh" | tail -n1)/coredns
[[ -x $coredns_bin ]] || die "build-node.sh built no coredns in $(dirname "$coredns_bin")"
coredns_version=$(cat "$(dirname "$coredns_bin")/.coredns-version")
img_stamp="$IMAGES_VERSION $VERSION $ISTIO_ECHO_VERSION $coredns_version $("$GO" env GOVERSION)"
IMAGES=$OUT/images
if [[ ! -f $IMAGES/.stamp || $(cat "$IMAGES/.stamp") != "$img_stamp" ]]; then
  # echo-basic: a main package of the conformance module, so from the suite's own module graph
  # (go.mod's tool line keeps its dependencies in go.sum)
  log "building echo-basic $VERSION"
  start=$SECONDS
  (cd "$SRC" && "${NICE[@]}" "$GO" build -trimpath -ldflags "-s -w" -o "$WORK/echo-basic" sigs.k8s.io/gateway-api/conformance/echo-basic) >&2 ||
    die "go build of echo-basic failed"
  log "echo-basic built in $((SECONDS - start))s"

  # Istio's echo app: its own module graph, in a throwaway wrapper module (as build-node.sh
  # builds containerd), so Istio's newer dependencies never move the suite's.
  log "building Istio's echo server and client at $ISTIO_ECHO_VERSION"
  m=istio.io/istio
  info=$("$GO" mod download -json "$m@$ISTIO_ECHO_VERSION") || die "the module proxy does not serve $m@$ISTIO_ECHO_VERSION"
  istio_dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")
  gover=$(awk '$1 == "go" { print $2; exit }' "$istio_dir/go.mod")
  mkdir -p "$WORK/istio"
  printf 'module weft.local/istio-echo\n\ngo %s\n\nrequire %s %s\n' "$gover" "$m" "$ISTIO_ECHO_VERSION" >"$WORK/istio/go.mod"
  cd "$WORK/istio"
  "$GO" get "$m/pkg/test/echo/cmd/client@$ISTIO_ECHO_VERSION" "$m/pkg/test/echo/cmd/server@$ISTIO_ECHO_VERSION" >&2 || die "go get of Istio's echo failed"
  start=$SECONDS
  "${NICE[@]}" "$GO" build -trimpath -ldflags "-s -w" -o "$WORK/istio-out/" "$m/pkg/test/echo/cmd/client" "$m/pkg/test/echo/cmd/server" >&2
  log "Istio's echo built in $((SECONDS - start))s"

  rm -rf "$IMAGES.new" && mkdir -p "$IMAGES.new"
  cd "$WORK"
  L=$IMAGES.new/oci
  umoci init --layout "$L"
  # echo-basic: as upstream's Dockerfile, the static binary alone, distroless's nonroot user
  binary_image "$L" echo-basic "$WORK/echo-basic" 65532:65532
  # echo-advanced: Istio's Dockerfile.app: client and server in /usr/local/bin (the suite execs
  # `client` in the pod, so PATH must find it), the test certificate as /cert.crt and
  # /cert.key (the mesh manifests pass --crt/--key), uid 1338 (not the sidecar's 1337, whose
  # traffic is never redirected)
  umoci new --image "$L:echo-advanced"
  umoci unpack --image "$L:echo-advanced" b-adv >/dev/null
  r=b-adv/rootfs
  mkdir -p "$r/usr/local/bin" "$r/tmp"
  chmod 1777 "$r/tmp"
  install -m 0755 "$WORK/istio-out/client" "$WORK/istio-out/server" "$r/usr/local/bin/"
  install -m 0644 "$istio_dir/tests/testdata/certs/dns/cert-chain.pem" "$r/cert.crt"
  install -m 0644 "$istio_dir/tests/testdata/certs/dns/key.pem" "$r/cert.key"
  umoci repack --image "$L:echo-advanced" b-adv
  umoci config --image "$L:echo-advanced" --config.entrypoint /usr/local/bin/server --config.user 1338:1338 \
    --config.env PATH=/usr/local/bin:/usr/bin:/bin
  # coredns: the binary only. Root, because upstream's nonroot image binds :53 by a file
  # capability (setcap) that a umoci layer does not carry; the pod spec drops every capability
  # but NET_BIND_SERVICE anyway.
  binary_image "$L" coredns "$coredns_bin"
  umoci gc --layout "$L"
  istio_tag=istio-${ISTIO_ECHO_VERSION##*-}
  cat >"$IMAGES.new/images.txt" <<EOF
# upstream repository                      layout tag     name in the node's registry (docs/design/conformance.md)
registry.k8s.io/gateway-api/echo-basic     echo-basic     gateway-api/echo-basic:$VERSION
registry.k8s.io/gateway-api/echo-advanced  echo-advanced  gateway-api/echo-advanced:$istio_tag
registry.k8s.io/coredns/coredns            coredns        coredns/coredns:$coredns_version
EOF
  echo "$img_stamp" >"$IMAGES.new/.stamp"
  rm -rf "$IMAGES" && mv "$IMAGES.new" "$IMAGES"
  log "images: $(du -sh "$IMAGES" | cut -f1) in $IMAGES/oci (tags echo-basic, echo-advanced, coredns)"
fi

log "done: conformance suite $VERSION in $OUT"
echo "$OUT"
