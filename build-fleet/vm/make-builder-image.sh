#!/usr/bin/env bash
# Makes the builder VM image of the kvm sandbox driver, once per host: a Debian root filesystem with
# buildah and runc (ext4, booted read-only through a throwaway overlay, so every VM starts pristine),
# Debian's cloud kernel as an uncompressed vmlinux (booted straight through its PVH entry: no
# decompression, which is what costs the most under TCG), and the VM's init. No initramfs: the cloud
# kernel has NVMe built in, so the root disk is an NVMe drive.
#
#   make-builder-image.sh [--out DIR] [--mirror URL] [--security-mirror URL|none] [--suite SUITE]
#                         [--root-size SIZE] [--force]
#
# Idempotent: an image already made from the same inputs (image.conf and guest/init) is kept.
# Needs root, debootstrap and mkfs.ext4 (e2fsprogs); about 1.5 minutes with a near Debian mirror.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${EDGE_BUILDER_IMAGE_DIR:-$here/.image}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
suite=bookworm
root_size=8G
force=0

while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --mirror) mirror=$2; shift 2 ;;
    --security-mirror) security_mirror=$2; shift 2 ;;
    --suite) suite=$2; shift 2 ;;
    --root-size) root_size=$2; shift 2 ;;
    --force) force=1; shift ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "make-builder-image: unknown argument: $1" >&2; exit 2 ;;
  esac
done

die() { echo "make-builder-image: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap and chroot)"
for tool in debootstrap mkfs.ext4 chroot sha256sum flock; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install debootstrap e2fsprogs coreutils util-linux)"
done

# What the image is made from (FORMAT, PACKAGES); the driver compares the stamp to refuse an image
# made from other inputs.
# shellcheck source=image.conf
. "$here/image.conf"
stamp=$(cat "$here/image.conf" "$here/guest/init" | sha256sum | cut -c1-16)

out=$(mkdir -p "$out" && cd "$out" && pwd)
# One maker at a time per output directory (a test and an operator may start it together).
exec 9>"$out/.lock"
flock 9

# Each image lives in a directory named by its stamp; `current` points at the one to boot, so a
# VM starting while a new image is made boots the old one or the new one, never a mix.
if [ "$force" -eq 0 ] && [ -f "$out/current/manifest" ] && grep -qx "stamp=$stamp" "$out/current/manifest"; then
  echo "make-builder-image: $out/current is up to date (stamp $stamp)"
  exit 0
fi

started=$(date +%s)
work=$(mktemp -d "$out/.work.XXXXXX")
cleanup() {
  # debootstrap may leave /proc mounted in the tree if it fails half-way.
  umount -l "$work/rootfs/proc" "$work/rootfs/sys" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
rootfs=$work/rootfs

echo "make-builder-image: debootstrap $suite from $mirror into $rootfs"
debootstrap --variant=minbase --include="$PACKAGES" "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; tail -20 "$rootfs/debootstrap/debootstrap.log" >&2 || true; die "debootstrap failed"; }

# Security updates: debootstrap installs the release as it was; builders run untrusted code, so
# they get what -security and -updates fixed since. No initramfs is ever booted: skip making one.
if [ "$security_mirror" != none ]; then
  echo "make-builder-image: upgrading from $suite-security and $suite-updates"
  sed -i 's/^update_initramfs=.*/update_initramfs=no/' "$rootfs/etc/initramfs-tools/update-initramfs.conf"
  cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security_mirror $suite-security main
SOURCES
  mount -t proc proc "$rootfs/proc"
  chroot "$rootfs" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -y -qq \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold full-upgrade' \
    >"$work/upgrade.log" 2>&1 || { umount "$rootfs/proc"; tail -20 "$work/upgrade.log" >&2; die "upgrade failed"; }
  umount "$rootfs/proc"
fi

# Name resolution that never waits: localhost is known and there are no name servers at all (a
# builder has no network, and a resolver timeout would stall every buildah step).
echo builder >"$rootfs/etc/hostname"
printf '127.0.0.1 localhost builder\n::1 localhost ip6-localhost ip6-loopback\n' >"$rootfs/etc/hosts"
rm -f "$rootfs/etc/resolv.conf"
: >"$rootfs/etc/resolv.conf"
# crun fails on hybrid cgroup hosts; runc is the runtime (the agent passes --runtime=runc as well).
mkdir -p "$rootfs/etc/containers"
printf '[engine]\nruntime = "runc"\n' >"$rootfs/etc/containers/containers.conf"
install -m 0755 "$here/guest/init" "$rootfs/sbin/edge-vm-init"

# The kernel: Debian ships a compressed bzImage; its payload is found by the compressor's magic
# bytes (what the kernel's scripts/extract-vmlinux does) and unpacked with the tools of the chroot.
vmlinuz=$(ls -v "$rootfs"/boot/vmlinuz-* | tail -1)
kernel_version=${vmlinuz##*/vmlinuz-}
# Only the booted kernel's modules are kept (an upgrade leaves the release's next to them).
for modules in "$rootfs"/lib/modules/*; do
  [ "${modules##*/}" = "$kernel_version" ] || rm -rf "$modules"
done
extract_vmlinux() {
  local pattern tool offset
  for pair in '\x1f\x8b\x08:gzip -dc' '\xfd7zXZ\x00:xz -dc' '\x02!L\x18:lz4 -dc' '\x28\xb5\x2f\xfd:zstd -dc' \
    'BZh:bzip2 -dc' '\x5d\x00\x00\x00:xz --format=lzma -dc'; do
    pattern=${pair%%:*}
    tool=${pair#*:}
    for offset in $(LC_ALL=C grep -obUaP "$pattern" "$vmlinuz" | cut -d: -f1 | head -5); do
      # shellcheck disable=SC2086 # tool is a command with flags
      tail -c +$((offset + 1)) "$vmlinuz" | chroot "$rootfs" $tool >"$work/vmlinux" 2>/dev/null || true
      if [ "$(head -c 4 "$work/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ]; then
        return 0
      fi
    done
  done
  return 1
}
extract_vmlinux || die "cannot extract an uncompressed vmlinux from $vmlinuz"

# Trim what a VM never reads (documentation, apt's state, the initramfs nobody boots).
rm -rf "$rootfs"/boot/* "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
  "$rootfs"/var/log/* "$rootfs"/debootstrap
buildah_version=$(chroot "$rootfs" buildah --version 2>/dev/null | cut -d' ' -f3)
runc_version=$(chroot "$rootfs" runc --version | head -1 | cut -d' ' -f3)

# No journal: the disk is thrown away after every VM, and journaling only costs writes.
echo "make-builder-image: mkfs.ext4 ($root_size, sparse)"
mkfs.ext4 -q -F -L edge-root -O ^has_journal -m 0 -d "$rootfs" "$work/root.ext4" "$root_size"

cat >"$work/manifest" <<MANIFEST
format=$FORMAT
security_updates=$([ "$security_mirror" = none ] && echo no || echo yes)
stamp=$stamp
kernel=vmlinux
kernel_version=$kernel_version
root=root.ext4
suite=$suite
buildah=$buildah_version
runc=$runc_version
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
MANIFEST

# Switch `current` only when the new image is whole; older images go (a VM still running one keeps
# its open files until it stops).
image=$out/$stamp-$(date +%s)
mkdir "$image"
mv "$work/vmlinux" "$work/root.ext4" "$work/manifest" "$image/"
ln -sfn "${image##*/}" "$out/.current.new"
mv -T "$out/.current.new" "$out/current"
for old in "$out"/*/; do
  old=${old%/}
  [ -L "$old" ] || [ "$old" = "$image" ] || rm -rf "$old"
done
echo "make-builder-image: $image ready in $(($(date +%s) - started)) s (kernel $kernel_version, buildah $buildah_version, runc $runc_version)"
