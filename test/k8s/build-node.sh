#!/usr/bin/env bash
# Build what a real single-node cluster needs (test/k8s/node.ts), cached by version outside the
# repository, like test/k8s/build.sh (which this calls first for the control plane):
#
#   kubelet, kube-scheduler, kube-proxy   k8s.io/kubernetes K8S_VERSION (build.sh's wrapper module)
#   containerd, containerd-shim-runc-v2   github.com/containerd/containerd/v2 CONTAINERD_VERSION
#   coredns                               github.com/coredns/coredns COREDNS_VERSION
#   images/ (an OCI layout)               weft-test/pause:1 (test/k8s/node/pause.c, static) and
#                                         weft-test/busybox:1 (Debian's busybox-static, plus
#                                         /bin/kget: test/k8s/node/kget, an in-cluster HTTPS GET)
#
#   test/k8s/build-node.sh [K8S_VERSION]
#   CONTAINERD_VERSION=v2.3.7 COREDNS_VERSION=v1.14.2 test/k8s/build-node.sh
#
# Output: ${WEFT_K8S_CACHE:-$HOME/.cache/weft/k8s}/<K8S_VERSION>/bin/ (binaries; a .X-version
# stamp beside each non-Kubernetes one) and .../<K8S_VERSION>/images/ (OCI layout + stamp).
# What exists at the right version is not rebuilt. The last line on stdout is the bin dir.
# Needs from Debian (checked, not installed): runc, containernetworking-plugins, busybox-static,
# umoci, skopeo, iptables, iproute2, util-linux (nsenter), a C compiler with a static libc.
# See docs/k8s-test-env.md ("A real node").
set -euo pipefail

DEFAULT_K8S_VERSION=v1.36.3
# containerd's RELEASES.md: Kubernetes 1.36 is supported by containerd 2.3.0+ and 2.2.0+
DEFAULT_CONTAINERD_VERSION=v2.3.7
DEFAULT_COREDNS_VERSION=v1.14.2
IMAGES_VERSION=2   # bump when the image recipe below changes

K8S_VERSION=${1:-${K8S_VERSION:-$DEFAULT_K8S_VERSION}}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-$DEFAULT_CONTAINERD_VERSION}
COREDNS_VERSION=${COREDNS_VERSION:-$DEFAULT_COREDNS_VERSION}
CACHE=${WEFT_K8S_CACHE:-$HOME/.cache/weft/k8s}
BIN=$CACHE/$K8S_VERSION/bin
IMAGES=$CACHE/$K8S_VERSION/images
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf '[k8s/build-node] %s\n' "$*" >&2; }
die() { printf '[k8s/build-node] error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=oci.sh
. "$here/oci.sh"

[[ $CONTAINERD_VERSION =~ ^v2\.[0-9]+\.[0-9]+$ ]] || die "CONTAINERD_VERSION must look like v2.3.7, got '$CONTAINERD_VERSION'"
[[ $COREDNS_VERSION =~ ^v1\.[0-9]+\.[0-9]+$ ]] || die "COREDNS_VERSION must look like v1.14.2, got '$COREDNS_VERSION'"

missing=()
for c in runc umoci skopeo iptables ip nsenter; do command -v "$c" >/dev/null || missing+=("$c"); done
[[ -x /usr/lib/cni/bridge ]] || missing+=("/usr/lib/cni/bridge")
# the image has no libc: /bin/busybox must be the static build (package busybox-static)
[[ $(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null) == "install ok installed" ]] || missing+=("busybox-static")
if [[ ${#missing[@]} -gt 0 ]]; then
  die "missing ${missing[*]}: apt-get install -y runc containernetworking-plugins busybox-static umoci skopeo iptables iproute2 util-linux conntrack"
fi

# control plane + the three node binaries of Kubernetes (all CGO_ENABLED=0, as upstream ships them)
"$here/build.sh" "$K8S_VERSION" >/dev/null
K8S_BINARIES="kubelet kube-scheduler kube-proxy" "$here/build.sh" "$K8S_VERSION" >/dev/null

GO=${GO:-$(command -v go || true)}
[[ -n $GO ]] || GO=/usr/local/go/bin/go
export GOFLAGS=${GOFLAGS:-} GOTOOLCHAIN=${GOTOOLCHAIN:-local} CGO_ENABLED=0
NICE=(nice -n "${WEFT_BUILD_NICE:-10}")

stamped() { [[ -x $BIN/$1 && -f $BIN/.$2-version && $(cat "$BIN/.$2-version") == "$3" ]]; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/weft-k8s-build-node.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# A throwaway module requiring MODULE@VERSION, with the go line the module asks for.
wrapper() { # dir module version
  local info gomod gover
  mkdir -p "$1"
  info=$("$GO" mod download -json "$2@$3") || die "the module proxy does not serve $2@$3"
  gomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")
  gover=$(awk '$1 == "go" { print $2; exit }' "$gomod")
  printf 'module weft.local/%s\n\ngo %s\n\nrequire %s %s\n' "$(basename "$1")" "$gover" "$2" "$3" >"$1/go.mod"
}

# --- containerd ---------------------------------------------------------------------------
if ! stamped containerd containerd "$CONTAINERD_VERSION" || ! stamped containerd-shim-runc-v2 containerd "$CONTAINERD_VERSION"; then
  log "building containerd $CONTAINERD_VERSION (containerd, containerd-shim-runc-v2)"
  m=github.com/containerd/containerd/v2
  wrapper "$WORK/containerd" "$m" "$CONTAINERD_VERSION"
  cd "$WORK/containerd"
  "$GO" get "$m/cmd/containerd@$CONTAINERD_VERSION" "$m/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" >&2 || die "go get of containerd failed"
  # containerd's Makefile: -X version.{Version,Revision,Package}; tags urfave_cli_no_docs; the
  # shim is CGO_ENABLED=0 upstream too; no_btrfs/no_devmapper: snapshotters we do not use
  ld="-s -w -X $m/version.Version=$CONTAINERD_VERSION -X $m/version.Package=github.com/containerd/containerd/v2"
  start=$SECONDS
  "${NICE[@]}" "$GO" build -trimpath -tags "urfave_cli_no_docs no_btrfs no_devmapper no_zfs" -ldflags "$ld" \
    -o "$WORK/out/" "$m/cmd/containerd" "$m/cmd/containerd-shim-runc-v2" >&2
  mv -f "$WORK/out/containerd" "$WORK/out/containerd-shim-runc-v2" "$BIN/"
  echo "$CONTAINERD_VERSION" >"$BIN/.containerd-version"
  log "containerd built in $((SECONDS - start))s"
fi

# --- CoreDNS ------------------------------------------------------------------------------
if ! stamped coredns coredns "$COREDNS_VERSION"; then
  log "building coredns $COREDNS_VERSION"
  m=github.com/coredns/coredns
  wrapper "$WORK/coredns" "$m" "$COREDNS_VERSION"
  cd "$WORK/coredns"
  "$GO" get "$m@$COREDNS_VERSION" >&2 || die "go get of coredns failed"
  start=$SECONDS
  "${NICE[@]}" "$GO" build -trimpath -ldflags "-s -w" -o "$WORK/coredns.bin" "$m" >&2
  mv -f "$WORK/coredns.bin" "$BIN/coredns"
  echo "$COREDNS_VERSION" >"$BIN/.coredns-version"
  log "coredns built in $((SECONDS - start))s"
fi

# --- images -------------------------------------------------------------------------------
# One OCI layout with two tags, pushed by node.ts to the node's own registry at start.
img_stamp="$IMAGES_VERSION $(cat "$here/node/pause.c" "$here/node/kget/main.go" | sha256sum | cut -c1-16) $(/bin/busybox | head -n1 | awk '{print $2}') $("$GO" env GOVERSION)"
if [[ ! -f $IMAGES/.stamp || $(cat "$IMAGES/.stamp") != "$img_stamp" ]]; then
  log "building images weft-test/pause:1 and weft-test/busybox:1"
  CC=${CC:-$(command -v cc || command -v clang || true)}
  [[ -n $CC ]] || die "no C compiler for the pause image (apt-get install -y clang, or gcc)"
  "$CC" -static -Os -s -o "$WORK/pause" "$here/node/pause.c" || die "could not link pause.c statically (needs libc6-dev)"
  # standard library only, so no module is involved (GO111MODULE=off builds the one file)
  (cd "$here/node/kget" && GO111MODULE=off "$GO" build -trimpath -ldflags "-s -w" -o "$WORK/kget" main.go) || die "could not build kget"
  rm -rf "$IMAGES.new" && mkdir -p "$IMAGES.new"
  cd "$WORK"
  L=$IMAGES.new/oci
  umoci init --layout "$L"
  # pause: the static binary only, as the upstream pause image; runs as 65535 like upstream
  binary_image "$L" pause "$WORK/pause" 65535:65535
  # busybox: static busybox with every applet linked in /bin, /etc/passwd, /tmp
  umoci new --image "$L:busybox"
  umoci unpack --image "$L:busybox" b-bb >/dev/null
  r=b-bb/rootfs
  mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/root" "$r/www"
  install -m 0755 /bin/busybox "$r/bin/busybox"
  install -m 0755 "$WORK/kget" "$r/bin/kget"
  for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -sf busybox "$r/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' >"$r/etc/group"
  chmod 1777 "$r/tmp"
  umoci repack --image "$L:busybox" b-bb
  umoci config --image "$L:busybox" --config.env PATH=/bin --config.cmd sh
  umoci gc --layout "$L"
  echo "$img_stamp" >"$IMAGES.new/.stamp"
  rm -rf "$IMAGES" && mv "$IMAGES.new" "$IMAGES"
  log "images: $(du -sh "$IMAGES" | cut -f1) in $IMAGES/oci (tags pause, busybox)"
fi

log "done: kubernetes $K8S_VERSION node, containerd $CONTAINERD_VERSION, coredns $COREDNS_VERSION"
echo "$BIN"
