# Sourced by the build scripts that make the test images (build-node.sh, build-conformance.sh):
# an OCI image of one binary, made with umoci in an OCI layout, without a registry or a daemon.

# binary_image LAYOUT TAG FILE [USER]: an image tagged TAG in LAYOUT holding FILE alone, at
# /<its name>, as the entrypoint, run as USER (uid:gid) when given. Works in the current
# directory (a scratch bundle named b-TAG).
binary_image() {
  local layout=$1 tag=$2 file=$3 user=${4:-}
  local name
  name=$(basename "$file")
  umoci new --image "$layout:$tag"
  umoci unpack --image "$layout:$tag" "b-$tag" >/dev/null
  install -m 0755 "$file" "b-$tag/rootfs/$name"
  umoci repack --image "$layout:$tag" "b-$tag"
  umoci config --image "$layout:$tag" --config.entrypoint "/$name" ${user:+--config.user "$user"}
}
