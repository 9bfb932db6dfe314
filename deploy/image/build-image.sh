#!/usr/bin/env bash
# Builds the evosip container image offline: the root filesystem from a build
# (build-rootfs.sh), then `FROM scratch` + that filesystem with podman (or buildah), saved as an
# OCI archive that `podman load` / `ctr images import` / a registry push take.
#   deploy/image/build-image.sh BUILD_DIR [TAG]      (make image)
# Writes BUILD_DIR/image/rootfs and BUILD_DIR/image/evosip-TAG.tar.
set -euo pipefail

build=$(cd "${1:?usage: $0 BUILD_DIR [TAG]}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
version=$("$build/evosip" --version)
tag=${2:-evosip:$version}
ctx=$build/image
mkdir -p "$ctx"
"$here/build-rootfs.sh" "$build" "$ctx/rootfs"
cp "$here/Containerfile" "$ctx/Containerfile"

archive=$ctx/evosip-${tag##*:}.tar
rm -f "$archive"
if command -v podman >/dev/null; then
  podman build --network=none --pull=never -f "$ctx/Containerfile" -t "$tag" "$ctx"
  podman save --format oci-archive -o "$archive" "$tag"
elif command -v buildah >/dev/null; then
  buildah bud --network=none --pull-never -f "$ctx/Containerfile" -t "$tag" "$ctx"
  buildah push "$tag" "oci-archive:$archive:$tag"
else
  echo "build-image: neither podman nor buildah is installed (make image installs them)" >&2
  exit 1
fi
echo "build-image: $tag -> $archive ($(du -h "$archive" | cut -f1))"
