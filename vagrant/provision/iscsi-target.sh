#!/bin/bash
# The storage VM of the Vagrant lab: export one file-backed LUN per shared disk over
# iSCSI (LIO, configured with targetcli), to the listed initiators only. LUNs are
# numbered in the order given, from 0 (the Vagrantfile gives sbd first, then lh1..).
# Idempotent: what exists already is kept (a disk is never re-created or resized).
#
#   iscsi-target.sh --iqn TARGET_IQN --portal ADDR [--dir DIR]
#                   --lun NAME:SIZE... --allow INITIATOR_IQN...
#
#   --iqn      the target's name, e.g. iqn.2024-01.org.ajs3:storage
#   --portal   the address to listen on (port 3260), never 0.0.0.0
#   --dir      where the backing files go (default /var/lib/ajs3-iscsi)
#   --lun      NAME:SIZE, e.g. lh1:1G (SIZE as targetcli takes it)
#   --allow    an initiator allowed to log in (one per cluster node)
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "iscsi-target.sh: $*" >&2; exit 2; }
iqn="" portal="" dir=/var/lib/ajs3-iscsi
luns=() allow=()
while [ $# -gt 0 ]; do
    case "$1" in
        --iqn) iqn=$2; shift ;;
        --portal) portal=$2; shift ;;
        --dir) dir=$2; shift ;;
        --lun) luns+=("$2"); shift ;;
        --allow) allow+=("$2"); shift ;;
        *) die "unknown option '$1' (see the header of $0)" ;;
    esac
    shift
done
if [ -z "$iqn" ] || [ -z "$portal" ]; then die "--iqn and --portal are required"; fi
[ "${#luns[@]}" -gt 0 ] || die "at least one --lun NAME:SIZE"
[ "${#allow[@]}" -gt 0 ] || die "at least one --allow INITIATOR_IQN"
[ "$(id -u)" = 0 ] || die "run me as root"

if ! command -v targetcli >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends targetcli-fb
fi
systemctl enable --now rtslib-fb-targetctl >/dev/null 2>&1 || true

exists() { targetcli "$1" ls >/dev/null 2>&1; }

install -d -m 0700 "$dir"
tpg=/iscsi/$iqn/tpg1
exists "/iscsi/$iqn" || targetcli /iscsi create "$iqn"
# targetcli listens on 0.0.0.0 by default: only the lab's private network here.
if exists "$tpg/portals/0.0.0.0:3260"; then
    targetcli "$tpg/portals" delete 0.0.0.0 3260
fi
exists "$tpg/portals/$portal:3260" || targetcli "$tpg/portals" create "$portal" 3260

lun=0
for spec in "${luns[@]}"; do
    name=${spec%%:*} size=${spec#*:}
    [ "$name" != "$spec" ] || die "--lun '$spec' is not NAME:SIZE"
    if ! exists "/backstores/fileio/$name"; then
        # write_back=false: an acknowledged write is on the storage VM's disk, which
        # is what a journal (and SBD) on the LUN count on.
        targetcli /backstores/fileio create name="$name" file_or_dev="$dir/$name.img" \
            size="$size" write_back=false
    fi
    exists "$tpg/luns/lun$lun" || \
        targetcli "$tpg/luns" create "/backstores/fileio/$name" lun="$lun" add_mapped_luns=false
    lun=$((lun + 1))
done

for initiator in "${allow[@]}"; do
    if ! exists "$tpg/acls/$initiator"; then
        targetcli "$tpg/acls" create "$initiator" add_mapped_luns=true
    fi
done
targetcli saveconfig
echo "iscsi-target.sh: $iqn on $portal:3260, ${#luns[@]} LUN(s), ${#allow[@]} initiator(s)"
