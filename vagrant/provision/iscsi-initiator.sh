#!/bin/bash
# A cluster node of the Vagrant lab: log in to the storage VM's iSCSI target, at
# every boot, and wait until its LUNs show up as
#   /dev/disk/by-path/ip-PORTAL:3260-iscsi-TARGET-lun-N
# (stable names that are the same on every node; the cluster configuration uses them).
# Idempotent. Waits up to --wait seconds for the target (the storage VM may still be
# provisioning when the nodes start, e.g. with libvirt's parallel `vagrant up`).
#
#   iscsi-initiator.sh --portal ADDR --target TARGET_IQN --initiator MY_IQN
#                      [--luns N] [--wait SECONDS]
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "iscsi-initiator.sh: $*" >&2; exit 2; }
portal="" target="" initiator="" luns=1 wait=600
while [ $# -gt 0 ]; do
    case "$1" in
        --portal) portal=$2; shift ;;
        --target) target=$2; shift ;;
        --initiator) initiator=$2; shift ;;
        --luns) luns=$2; shift ;;
        --wait) wait=$2; shift ;;
        *) die "unknown option '$1' (see the header of $0)" ;;
    esac
    shift
done
if [ -z "$portal" ] || [ -z "$target" ] || [ -z "$initiator" ]; then
    die "--portal, --target and --initiator are required"
fi
[ "$(id -u)" = 0 ] || die "run me as root"

if ! command -v iscsiadm >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends open-iscsi
fi

# The target's ACL names this initiator: set it before iscsid first logs in.
want="InitiatorName=$initiator"
if [ "$(cat /etc/iscsi/initiatorname.iscsi 2>/dev/null)" != "$want" ]; then
    echo "$want" > /etc/iscsi/initiatorname.iscsi
    systemctl restart iscsid
fi
sed -i 's/^node.startup = manual/node.startup = automatic/' /etc/iscsi/iscsid.conf
systemctl enable --now iscsid open-iscsi >/dev/null 2>&1 || true

deadline=$((SECONDS + wait))
until iscsiadm -m discovery -t sendtargets -p "$portal" 2>/dev/null | grep -qF "$target"; do
    [ "$SECONDS" -lt "$deadline" ] || die "no target $target at $portal after ${wait}s"
    sleep 5
done
iscsiadm -m node -T "$target" -p "$portal" --op update -n node.startup -v automatic
if ! iscsiadm -m session 2>/dev/null | grep -qF "$target"; then
    iscsiadm -m node -T "$target" -p "$portal" --login
fi

for ((lun = 0; lun < luns; lun++)); do
    dev=/dev/disk/by-path/ip-$portal:3260-iscsi-$target-lun-$lun
    until [ -b "$dev" ]; do
        [ "$SECONDS" -lt "$deadline" ] || die "$dev did not appear"
        udevadm settle
        sleep 1
    done
    echo "iscsi-initiator.sh: $dev -> $(readlink -f "$dev")"
done
