#!/bin/bash
# Build the VM lab's Vagrant box from Debian 12 packages and add it to Vagrant:
# mmdebstrap makes the tree, customize.sh makes it a Vagrant machine, the tree
# becomes an ext4 file system in a qcow2 image, and the box (metadata.json,
# Vagrantfile, box.img, the kernel and initramfs it boots, the vagrant user's key)
# is added as AJS3_BOX (default ajs3-bookworm64) for the libvirt provider.
#
#   vagrant/box/build.sh [--force] [--sources FILE]
#
#   --force    build even when the box in Vagrant was built from the same inputs
#   --sources  the apt sources (deb822 or one-line) to build from; default: the
#              host's own Debian sources (the .sources file signed by
#              debian-archive-keyring), so the box comes from the mirror apt uses
#
# Cached: the inputs (this script, customize.sh, box.Vagrantfile, the sources, the
# package list, the disk size) are hashed into the box; a box built from the same
# inputs is kept and nothing is done. A new Debian point release does not change
# the inputs: --force takes it in.
#
# Environment: AJS3_VM_DIR (default /var/tmp/ajs3-vm: the build's scratch space and
# Vagrant's home, AJS3_VM_DIR/vagrant.d), AJS3_BOX, AJS3_BOX_DISK_GB (default 8).
# Runs at the lowest CPU and I/O priority (nice 19, ionice idle). Needs root and
# vagrant/host-setup.sh's packages.
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "build.sh: $*" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)

force=0 sources=""
while [ $# -gt 0 ]; do
    case "$1" in
        --force) force=1 ;;
        --sources) sources=$2; shift ;;
        *) die "unknown option '$1' (see the header of $0)" ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || die "run me as root (mmdebstrap --mode=root, mkfs.ext4 -d)"
for tool in mmdebstrap mkfs.ext4 qemu-img vagrant ssh-keygen sha256sum; do
    command -v "$tool" >/dev/null || die "$tool is missing: run vagrant/host-setup.sh"
done

vm_dir=${AJS3_VM_DIR:-/var/tmp/ajs3-vm}
box_name=${AJS3_BOX:-ajs3-bookworm64}
disk_gb=${AJS3_BOX_DISK_GB:-8}
case "$box_name" in */*|"") die "AJS3_BOX='$box_name': a name without '/' please" ;; esac
case "$disk_gb" in *[!0-9]*|"") die "AJS3_BOX_DISK_GB='$disk_gb' is not a whole number" ;; esac
export VAGRANT_HOME=$vm_dir/vagrant.d
export VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_BOX_UPDATE_CHECK_DISABLE=1 VAGRANT_NO_COLOR=1

if [ -z "$sources" ]; then
    for f in /etc/apt/sources.list.d/*.sources; do
        if [ -f "$f" ] && grep -q '^Signed-By: */usr/share/keyrings/debian-archive-keyring' "$f"; then
            sources=$f
            break
        fi
    done
    [ -n "$sources" ] || die "no Debian .sources file in /etc/apt/sources.list.d: pass --sources FILE"
fi
[ -s "$sources" ] || die "--sources $sources: no such file"

# What every VM boots with: a kernel, systemd, sshd, sudo; rsync for Vagrant's
# synced folder; python3 for the cluster's tools and testinfra.
base_packages=(
    linux-image-amd64 systemd-sysv udev dbus openssh-server sudo
    iproute2 iputils-ping kmod procps netbase less rsync python3
)
# What the provisioning scripts would fetch with apt, in the box because the VMs'
# networks never leave the host (no mirror is reachable from a VM): install.sh's
# own lists (a node's and an execution host's), iscsi-target.sh, iscsi-initiator.sh
# and sbd.sh. One box for every VM: customize.sh leaves their services disabled,
# and each VM's provisioning enables what that VM runs.
install_sh=$here/../provision/install.sh
read -ra node_packages < <(bash "$install_sh" --packages)
read -ra exechost_packages < <(bash "$install_sh" --packages --exechost)
[ "${#node_packages[@]}" -gt 0 ] || die "$install_sh --packages printed nothing"
lab_packages=(targetcli-fb open-iscsi sbd fence-agents)
packages=("${base_packages[@]}" "${node_packages[@]}" "${exechost_packages[@]}" "${lab_packages[@]}")
# each once, in a stable order (the order is part of the box's inputs)
mapfile -t packages < <(printf '%s\n' "${packages[@]}" | sort -u)

inputs=$(
    {
        cat "$0" "$here/customize.sh" "$here/box.Vagrantfile" "$sources"
        echo "packages: ${packages[*]}"
        echo "disk: ${disk_gb}G"
    } | sha256sum | cut -d' ' -f1
)
added="$VAGRANT_HOME/boxes/$box_name/0/libvirt"
if [ "$force" = 0 ] && [ "$(cat "$added/ajs3-box-inputs" 2>/dev/null)" = "$inputs" ]; then
    echo "build.sh: box $box_name is up to date ($(cat "$added/ajs3-box-built" 2>/dev/null || echo '?'))"
    exit 0
fi

renice -n 19 -p $$ >/dev/null
ionice -c 3 -p $$
mkdir -p "$vm_dir"
exec 9>"$vm_dir/box.lock"
flock -n 9 || die "another build holds $vm_dir/box.lock"

work=$(mktemp -d "$vm_dir/box-build.XXXXXX")
cleanup() {
    # mmdebstrap unmounts what it mounted; after a kill, whatever is left is
    # unmounted before the tree goes (rm never crosses into a mount).
    local m
    for m in $(grep -o " $work/[^ ]*" /proc/self/mounts | sort -r || true); do
        umount -l "$m" || true
    done
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT
out=$work/box
mkdir "$out"

t0=$(date +%s)
echo "build.sh: building $box_name from $sources (inputs ${inputs:0:12})"
ssh-keygen -q -t ed25519 -N "" -C "vagrant@$box_name" -f "$out/vagrant_key"

# shellcheck disable=SC2016  # $1 is for mmdebstrap's shell: the tree
printf -v hook '%q "$1" %q' "$here/customize.sh" "$out/vagrant_key.pub"
mmdebstrap --mode=root --variant=minbase \
    --include="$(IFS=,; echo "${packages[*]}")" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook="$hook" \
    bookworm "$work/rootfs" "$sources"
t1=$(date +%s)

# The kernel and initramfs the VM boots (box.Vagrantfile), beside its disk.
kernels=("$work"/rootfs/boot/vmlinuz-*)
[ "${#kernels[@]}" = 1 ] || die "expected one kernel in the tree, found: ${kernels[*]}"
version=${kernels[0]##*/vmlinuz-}
install -m 0644 "${kernels[0]}" "$out/vmlinuz"
install -m 0644 "$work/rootfs/boot/initrd.img-$version" "$out/initrd.img"

truncate -s "${disk_gb}G" "$work/root.raw"
mkfs.ext4 -q -F -L ajs3-root -d "$work/rootfs" "$work/root.raw"
rm -rf --one-file-system "$work/rootfs"
qemu-img convert -f raw -O qcow2 "$work/root.raw" "$out/box.img"
rm -f "$work/root.raw"
t2=$(date +%s)

cat >"$out/metadata.json" <<EOF
{"provider": "libvirt", "format": "qcow2", "virtual_size": $disk_gb}
EOF
install -m 0644 "$here/box.Vagrantfile" "$out/Vagrantfile"
echo "$inputs" >"$out/ajs3-box-inputs"
echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ), kernel $version, mmdebstrap $((t1 - t0)) s, image $((t2 - t1)) s" \
    >"$out/ajs3-box-built"
tar -cf "$work/$box_name.box" -C "$out" .
vagrant box add --force --name "$box_name" "$work/$box_name.box" >/dev/null
t3=$(date +%s)

echo "build.sh: box $box_name added to $VAGRANT_HOME in $((t3 - t0)) s" \
    "(mmdebstrap $((t1 - t0)) s, image $((t2 - t1)) s, box add $((t3 - t2)) s;" \
    "disk $(du -m "$out/box.img" | cut -f1) MiB, kernel $version)"
