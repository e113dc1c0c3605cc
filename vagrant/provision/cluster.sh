#!/bin/bash
# Set up the ajs3 Pacemaker cluster with pcs: the runbook's commands, used as-is by
# the namespace lab (tests/cluster/lab.py) and by the Vagrant lab. Nothing here is
# lab-specific: node names, addresses, devices, IPs, the fence device and the
# logical hosts' third resource are all parameters.
#
#   cluster.sh corosync-conf --name NAME --out FILE [--token MS]
#                            [--token-coefficient MS] NODE=ADDR...
#       Write corosync.conf for these nodes with pcs in local mode (no pcsd).
#       Copy it to /etc/corosync/ on every node with the same authkey
#       (corosync-keygen), then start corosync and pacemaker.
#
#   cluster.sh configure [--fence "AGENT key=value..."] [--stonith-action reboot|off]
#                        [--app "AGENT key=value..."] [--mount-root DIR] [--fstype T]
#                        [--stickiness N] LHOST=NODE,DEVICE,IP/CIDR...
#       Run once, on one node of a running cluster: cluster properties, the fence
#       device, and for every logical host a group LHOST of
#         LHOST-fs    ocf:heartbeat:Filesystem  DEVICE on MOUNT_ROOT/LHOST
#         LHOST-ip    ocf:heartbeat:IPaddr2     IP/CIDR
#         LHOST-ajs3  the --app agent ({lh} and {dir} are replaced by the logical
#                     host's name and data directory); default
#                     "ocf:ajs3:ajs3 lhost={lh} datadir={dir}"
#       preferring NODE (score 50, below the stickiness, so nothing fails back by
#       itself). All changes go into a copy of the CIB and are pushed at once.
#
# Example (3 VMs):
#   cluster.sh corosync-conf --name ajs3 --out /etc/corosync/corosync.conf \
#       node1=192.168.56.11 node2=192.168.56.12 node3=192.168.56.13
#   cluster.sh configure --fence "fence_virsh ip=... pcmk_host_list=node1,node2,node3" \
#       lh1=node1,/dev/disk/by-id/lh1,192.168.56.101/24 \
#       lh2=node2,/dev/disk/by-id/lh2,192.168.56.102/24
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "cluster.sh: $*" >&2; exit 2; }
say() { echo "cluster.sh: $*"; }

corosync_conf() {
    local name="" out="" token="" coefficient=""
    local nodes=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --name) name=$2; shift ;;
            --out) out=$2; shift ;;
            --token) token=$2; shift ;;
            --token-coefficient) coefficient=$2; shift ;;
            -*) die "corosync-conf: unknown option '$1'" ;;
            *=*) nodes+=("${1%%=*}" "addr=${1#*=}") ;;
            *) die "corosync-conf: '$1' is not NODE=ADDR" ;;
        esac
        shift
    done
    if [ -z "$name" ] || [ -z "$out" ]; then die "corosync-conf needs --name and --out"; fi
    [ "${#nodes[@]}" -ge 2 ] || die "corosync-conf needs at least one NODE=ADDR"
    local totem=()
    [ -n "$token" ] && totem+=("token=$token")
    [ -n "$coefficient" ] && totem+=("token_coefficient=$coefficient")
    [ "${#totem[@]}" -gt 0 ] && totem=(totem "${totem[@]}")
    # pcs warns that it has no known-hosts file: local mode needs none.
    pcs cluster setup "$name" "${nodes[@]}" "${totem[@]}" \
        --corosync_conf "$out" --overwrite 2> >(grep -v 'known-hosts' >&2)
    say "wrote $out"
}

configure() {
    local fence="" action=reboot app="ocf:ajs3:ajs3 lhost={lh} datadir={dir}"
    local root=/srv/ajs3 fstype=ext4 stickiness=100
    local lhosts=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --fence) fence=$2; shift ;;
            --stonith-action) action=$2; shift ;;
            --app) app=$2; shift ;;
            --mount-root) root=$2; shift ;;
            --fstype) fstype=$2; shift ;;
            --stickiness) stickiness=$2; shift ;;
            -*) die "configure: unknown option '$1'" ;;
            *=*,*,*) lhosts+=("$1") ;;
            *) die "configure: '$1' is not LHOST=NODE,DEVICE,IP/CIDR" ;;
        esac
        shift
    done
    [ -n "$fence" ] || die "configure: --fence is required (a shared disk without fencing is not a cluster)"

    local work
    work=$(mktemp -d /tmp/ajs3-cluster.XXXXXX)
    trap 'rm -rf "$work"' RETURN
    pcs cluster cib "$work/orig.xml"
    cp "$work/orig.xml" "$work/new.xml"
    local cib=(pcs -f "$work/new.xml")

    "${cib[@]}" property set stonith-enabled=true stonith-action="$action" \
        no-quorum-policy=stop
    "${cib[@]}" resource defaults update resource-stickiness="$stickiness"

    # shellcheck disable=SC2086  # "AGENT key=value..." splits into words on purpose
    set -- $fence
    local fence_agent=$1; shift
    "${cib[@]}" stonith create fence-"${fence_agent#fence_}" "$fence_agent" "$@"

    local spec lh rest node dev ipcidr dir
    for spec in "${lhosts[@]}"; do
        lh=${spec%%=*}; rest=${spec#*=}
        IFS=, read -r node dev ipcidr <<<"$rest"
        dir=$root/$lh
        "${cib[@]}" resource create "$lh-fs" ocf:heartbeat:Filesystem \
            device="$dev" directory="$dir" fstype="$fstype" --group "$lh"
        "${cib[@]}" resource create "$lh-ip" ocf:heartbeat:IPaddr2 \
            ip="${ipcidr%/*}" cidr_netmask="${ipcidr#*/}" --group "$lh"
        local a=${app//\{lh\}/$lh}
        a=${a//\{dir\}/$dir}
        # shellcheck disable=SC2086
        "${cib[@]}" resource create "$lh-ajs3" $a --group "$lh"
        "${cib[@]}" constraint location "$lh" prefers "$node=50"
        say "group $lh: $dev on $dir, $ipcidr, ${a%% *}; prefers $node"
    done
    pcs cluster cib-push "$work/new.xml" diff-against="$work/orig.xml"
}

cmd=${1:-}
[ -n "$cmd" ] || die "usage: cluster.sh corosync-conf|configure ... (see the header of $0)"
shift
case "$cmd" in
    corosync-conf) corosync_conf "$@" ;;
    configure) configure "$@" ;;
    *) die "unknown command '$cmd' (see the header of $0)" ;;
esac
