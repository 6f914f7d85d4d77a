#!/usr/bin/env bash
# Start etcd + kube-apiserver + kube-controller-manager on loopback (test/k8s/cluster.ts).
#   test/k8s/start.sh          # "up": prints `export KUBECONFIG=...`, runs until Ctrl-C
#   test/k8s/start.sh smoke    # start, prove it works, stop; exit status tells
#   test/k8s/start.sh up --node   # plus a real node (root; test/k8s/build-node.sh, node.ts)
# Uses the repository's Node (node_modules/.bin/node, >= 22.18 runs .ts) if installed, since
# the system node may be too old. Builds the binaries first if needed (test/k8s/build.sh).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
node=$root/node_modules/.bin/node
[[ -x $node ]] || node=$(command -v node)
exec "$node" "$here/cluster.ts" "${1:-up}" "${@:2}"
