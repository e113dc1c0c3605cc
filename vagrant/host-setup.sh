#!/bin/bash
# The host side of the VM lab: install with apt what building the box and running
# the VMs need (QEMU, libvirt, Vagrant with vagrant-libvirt, mmdebstrap). Idempotent:
# a package already installed is not touched, and nothing is done when none is
# missing. Installs only: no service is started or enabled (vagrant/lab.sh starts
# its own libvirtd inside a network namespace; see vagrant/README.md).
#
#   vagrant/host-setup.sh [--check]
#
#   --check   install nothing: list what is missing and exit 1 if anything is
#
# Not part of provision/install.sh on purpose: CI's install does not need a VM lab.
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "host-setup.sh: $*" >&2; exit 2; }

check=0
while [ $# -gt 0 ]; do
    case "$1" in
        --check) check=1 ;;
        *) die "unknown option '$1' (see the header of $0)" ;;
    esac
    shift
done

packages=(
    qemu-system-x86 qemu-utils           # the emulator (TCG), qemu-img
    libvirt-daemon-system libvirt-clients # libvirtd, virtlogd, virsh
    dnsmasq-base iptables                 # DHCP on the VM networks (inside the namespace)
    vagrant vagrant-libvirt               # Vagrant and its libvirt provider
    mmdebstrap e2fsprogs                  # the box: Debian packages into an ext4 image
    openssh-client rsync util-linux iproute2
    python3-venv                          # pip download: the wheels the VMs install from
)

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "host-setup.sh: all ${#packages[@]} packages are installed"
    exit 0
fi
if [ "$check" = 1 ]; then
    echo "host-setup.sh: missing: ${missing[*]}" >&2
    exit 1
fi
[ "$(id -u)" = 0 ] || die "run me as root (apt-get install ${missing[*]})"

# A package's maintainer scripts must not start libvirtd (or its default NAT
# network) in the host's namespaces: a policy-rc.d that refuses every start, for the
# time of the install only, unless the machine already has one.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# host-setup.sh: no service starts during the install\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    made_policy=1
fi
cleanup() { if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
echo "host-setup.sh: installing ${missing[*]}"
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "host-setup.sh: done"
