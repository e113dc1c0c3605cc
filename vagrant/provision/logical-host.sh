#!/bin/bash
# A logical host's shared volume and resource group: the commands of
# docs/runbooks/logical-hosts.md as one script (the runbook tests run both).
#
#   logical-host.sh prepare LHOST DEVICE
#       Make an ext4 file system labelled LHOST on DEVICE, unless DEVICE already
#       holds a file system (an existing journal is never overwritten).
#   logical-host.sh add LHOST NODE DEVICE IP/CIDR [--mount-root DIR] [--app "AGENT k=v..."]
#       The group LHOST: LHOST-fs (Filesystem), LHOST-ip (IPaddr2), LHOST-ajs3
#       (ocf:ajs3:ajs3), preferring NODE with score 50; created disabled, then
#       enabled, so it starts only once complete.
#   logical-host.sh remove LHOST [--wait S]
#       Stop the group (jobs are killed per the agent's stop_jobs), then delete it
#       and its constraints. The volume and its data are left as they are.
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "logical-host.sh: $*" >&2; exit 2; }

prepare() {
    [ $# -eq 2 ] || die "usage: prepare LHOST DEVICE"
    local lh=$1 dev=$2
    [ -b "$dev" ] || die "$dev is not a block device"
    if blkid -p "$dev" >/dev/null 2>&1; then
        echo "logical-host.sh: $dev has a file system already; left as it is"
    else
        mkfs.ext4 -q -L "$lh" "$dev"
        echo "logical-host.sh: made ext4 '$lh' on $dev"
    fi
}

add() {
    local root=/srv/ajs3 app="ocf:ajs3:ajs3 lhost={lh} datadir={dir}"
    local args=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --mount-root) root=$2; shift ;;
            --app) app=$2; shift ;;
            -*) die "add: unknown option '$1'" ;;
            *) args+=("$1") ;;
        esac
        shift
    done
    [ "${#args[@]}" -eq 4 ] || die "usage: add LHOST NODE DEVICE IP/CIDR"
    local lh=${args[0]} node=${args[1]} dev=${args[2]} ipcidr=${args[3]}
    local dir=$root/$lh
    pcs resource create "$lh-fs" ocf:heartbeat:Filesystem \
        device="$dev" directory="$dir" fstype=ext4 --group "$lh" --disabled
    pcs resource create "$lh-ip" ocf:heartbeat:IPaddr2 \
        ip="${ipcidr%/*}" cidr_netmask="${ipcidr#*/}" --group "$lh"
    local a=${app//\{lh\}/$lh}
    a=${a//\{dir\}/$dir}
    # shellcheck disable=SC2086  # "AGENT key=value..." splits into words on purpose
    pcs resource create "$lh-ajs3" $a --group "$lh"
    pcs constraint location "$lh" prefers "$node=50"
    pcs resource enable "$lh-fs"
    echo "logical-host.sh: group $lh added ($dev on $dir, $ipcidr, prefers $node)"
}

remove() {
    local wait=120 lh=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --wait) wait=$2; shift ;;
            -*) die "remove: unknown option '$1'" ;;
            *) lh=$1 ;;
        esac
        shift
    done
    [ -n "$lh" ] || die "usage: remove LHOST"
    pcs resource disable "$lh" --wait="$wait"
    pcs resource delete "$lh"
    echo "logical-host.sh: group $lh removed"
}

cmd=${1:-}
[ -n "$cmd" ] || die "usage: logical-host.sh prepare|add|remove ... (see the header of $0)"
shift
case "$cmd" in
    prepare) prepare "$@" ;;
    add) add "$@" ;;
    remove) remove "$@" ;;
    *) die "unknown command '$cmd'" ;;
esac
