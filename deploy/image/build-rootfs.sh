#!/usr/bin/env bash
# Assembles the root filesystem of the evosip container image from a build:
#   deploy/image/build-rootfs.sh BUILD_DIR ROOTFS_DIR
# BUILD_DIR holds the evosip binary and the prompts the build made (BUILD_DIR/sounds); env
# EVOSIP_BIN names another binary. ROOTFS_DIR is emptied and filled with:
#   /usr/bin/evosip (stripped), its shared-library closure (ldd) and the dynamic loader,
#   /usr/share/evosip/sounds (the default prompts), /etc/evosip/<role>.yaml (loopback defaults),
#   /etc/passwd and /etc/group with the user evosip (10001), /etc/nsswitch.conf, the CA
#   certificates, and writable /tmp, /var/lib/evosip and /var/spool/evosip/voicemail.
# Needs no network: everything comes from the build and this host's files.
set -euo pipefail

if (($# != 2)); then
  echo "usage: $0 BUILD_DIR ROOTFS_DIR" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
rootfs=$2
here=$(cd "$(dirname "$0")" && pwd)
bin=${EVOSIP_BIN:-$build/evosip}
uid=10001

[[ -x $bin ]] || { echo "build-rootfs: no evosip binary at $bin" >&2; exit 1; }
[[ -d $build/sounds/default ]] || { echo "build-rootfs: no prompts in $build/sounds" >&2; exit 1; }

rm -rf "$rootfs"
mkdir -p "$rootfs"/{usr/bin,usr/lib,usr/lib64,usr/share/evosip,etc/evosip,etc/ssl/certs}
# Merged /usr, as on Debian 12: the loader and libraries are found under /lib and /lib64 too.
ln -s usr/lib "$rootfs/lib"
ln -s usr/lib64 "$rootfs/lib64"
ln -s usr/bin "$rootfs/bin"

install -m 0755 "$bin" "$rootfs/usr/bin/evosip"
if command -v strip >/dev/null; then
  strip --strip-unneeded "$rootfs/usr/bin/evosip"
fi

# The shared-library closure: every path ldd resolves (it lists the whole tree), copied with its
# links followed under the name the loader asks for.
copy_lib() {
  local path=$1 dest
  case $path in
    /usr/*) dest=$rootfs$path ;;
    /*) dest=$rootfs/usr$path ;;
    *) return 0 ;;
  esac
  mkdir -p "$(dirname "$dest")"
  cp -L "$path" "$dest"
}
libs=$(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[[ -n $libs ]] || { echo "build-rootfs: ldd found no libraries for $bin" >&2; exit 1; }
for lib in $libs; do
  copy_lib "$lib"
done

cp -r "$build/sounds" "$rootfs/usr/share/evosip/sounds"
install -m 0644 "$here"/etc/evosip/*.yaml "$rootfs/etc/evosip/"

cat >"$rootfs/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/sbin/nologin
evosip:x:$uid:$uid:evosip:/var/lib/evosip:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat >"$rootfs/etc/group" <<GROUP
root:x:0:
evosip:x:$uid:
nogroup:x:65534:
GROUP
printf 'hosts: files dns\nnetworks: files\npasswd: files\ngroup: files\n' >"$rootfs/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$rootfs/etc/hosts"
# TLS peers (PostgreSQL with sslmode=verify-full, a Kubernetes API) are verified against these.
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
fi

mkdir -p "$rootfs"/{tmp,var/lib/evosip,var/spool/evosip/voicemail,run/secrets/evosip}
chmod 1777 "$rootfs/tmp"
# The user owns its data folders (ownership needs root; the image build sets it again).
if [[ $(id -u) -eq 0 ]]; then
  chown -R "$uid:$uid" "$rootfs/var/lib/evosip" "$rootfs/var/spool/evosip"
fi

echo "build-rootfs: $rootfs ($(du -sh "$rootfs" | cut -f1))"
