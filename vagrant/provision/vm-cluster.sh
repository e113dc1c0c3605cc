#!/bin/bash
# Corosync/Pacemaker on the Vagrant lab's nodes, around cluster.sh (which the
# namespace lab runs too):
#
#   vm-cluster.sh join --name NAME --secret SECRET [--token MS] NODE=ADDR...
#       On every node: corosync.conf by `cluster.sh corosync-conf` (the same
#       arguments give the same file on every node; --token: corosync's token
#       timeout, longer under emulation), the authkey derived from
#       SECRET (so no key has to be copied between VMs), then corosync (with sbd)
#       and pacemaker enabled and started. Idempotent.
#
#   vm-cluster.sh configure --nodes N --sbd-device DEV [--stonith-timeout S]
#                           [--op-timeout S] LHOST=NODE,DEVICE,IP/CIDR...
#       Once, on the last node: wait until N nodes are online, make each logical
#       host's file system (logical-host.sh prepare), then `cluster.sh configure`
#       with fence_sbd, and stonith-timeout (default 40) above SBD's msgwait;
#       --op-timeout: every operation of the ajs3 resources (start, stop, the
#       three monitor depths) is given S seconds (the agent's defaults, 20-60 s,
#       timed out under emulation, where each ajs3 command's start alone takes
#       seconds). Does nothing when the fence device exists already.
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "vm-cluster.sh: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "run me as root"

join() {
    local name="" secret="" token=""
    local nodes=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --name) name=$2; shift ;;
            --secret) secret=$2; shift ;;
            --token) token=$2; shift ;;
            *=*) nodes+=("$1") ;;
            *) die "join: unknown argument '$1'" ;;
        esac
        shift
    done
    if [ -z "$name" ] || [ -z "$secret" ]; then die "join needs --name and --secret"; fi
    local new=/etc/corosync/corosync.conf.new changed=0
    local totem=()
    if [ -n "$token" ]; then
        case "$token" in *[!0-9]*) die "join: --token '$token' is not milliseconds" ;; esac
        totem=(--token "$token")
    fi
    bash "$here/cluster.sh" corosync-conf --name "$name" --out "$new" "${totem[@]}" "${nodes[@]}"
    if ! cmp -s "$new" /etc/corosync/corosync.conf; then
        mv "$new" /etc/corosync/corosync.conf
        changed=1
    else
        rm -f "$new"
    fi
    # 256 bytes from the secret: sha512 of "secret-0" .. "secret-3".
    local key=/etc/corosync/authkey.new
    SECRET=$secret python3 -c 'import hashlib, os, sys; s = os.environ["SECRET"]
sys.stdout.buffer.write(b"".join(hashlib.sha512(f"{s}-{i}".encode()).digest() for i in range(4)))' \
        > "$key"
    chmod 0400 "$key"
    if ! cmp -s "$key" /etc/corosync/authkey; then
        mv "$key" /etc/corosync/authkey
        changed=1
    else
        rm -f "$key"
    fi
    systemctl enable corosync pacemaker >/dev/null 2>&1
    if [ "$changed" = 1 ]; then
        systemctl restart corosync
    else
        systemctl start corosync
    fi
    systemctl start pacemaker
    echo "vm-cluster.sh: $(hostname) joined cluster $name"
}

configure() {
    local want="" sbd="" wait=600 stonith_timeout=40 op_timeout=""
    local specs=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --nodes) want=$2; shift ;;
            --sbd-device) sbd=$2; shift ;;
            --wait) wait=$2; shift ;;
            --stonith-timeout) stonith_timeout=$2; shift ;;
            --op-timeout) op_timeout=$2; shift ;;
            *=*,*,*) specs+=("$1") ;;
            *) die "configure: unknown argument '$1'" ;;
        esac
        shift
    done
    if [ -z "$want" ] || [ -z "$sbd" ]; then die "configure needs --nodes and --sbd-device"; fi
    case "$stonith_timeout" in ""|*[!0-9]*) die "configure: --stonith-timeout '$stonith_timeout' is not seconds" ;; esac
    local app=()
    if [ -n "$op_timeout" ]; then
        case "$op_timeout" in *[!0-9]*) die "configure: --op-timeout '$op_timeout' is not seconds" ;; esac
        local t="timeout=${op_timeout}s"
        app=(--app "ocf:ajs3:ajs3 lhost={lh} datadir={dir} op start $t op stop $t
            op monitor interval=10s $t op monitor interval=30s OCF_CHECK_LEVEL=10 $t
            op monitor interval=3600s OCF_CHECK_LEVEL=20 $t")
    fi
    local deadline=$((SECONDS + wait)) online=0
    while :; do
        # online and no longer pending: a node whose pacemaker has not joined yet is
        # online="true" pending="true" (corosync sees it)
        online=$(crm_mon -1 --output-as=xml 2>/dev/null | grep '<node name=' | grep 'online="true"' |
            grep -c 'pending="false"' || true)
        [ "$online" -ge "$want" ] && break
        [ "$SECONDS" -lt "$deadline" ] || die "only $online of $want nodes online after ${wait}s"
        sleep 5
    done
    # msgwait is 2 x the watchdog timeout (sbd.sh); fencing must be given longer.
    # Set every time: a re-provisioned lab takes a changed timeout too.
    pcs property set stonith-timeout="${stonith_timeout}s"
    if crm_resource --list-raw 2>/dev/null | grep -qx fence-sbd; then
        echo "vm-cluster.sh: the cluster is configured already (stonith-timeout ${stonith_timeout}s)"
        return 0
    fi
    local spec rest dev
    for spec in "${specs[@]}"; do
        rest=${spec#*=}
        dev=$(cut -d, -f2 <<<"$rest")
        bash "$here/logical-host.sh" prepare "${spec%%=*}" "$dev"
    done
    bash "$here/cluster.sh" configure --fence "fence_sbd devices=$sbd" "${app[@]}" "${specs[@]}"
    crm_mon -1
}

cmd=${1:-}
[ -n "$cmd" ] || die "usage: vm-cluster.sh join|configure ... (see the header of $0)"
shift
case "$cmd" in
    join) join "$@" ;;
    configure) configure "$@" ;;
    *) die "unknown command '$cmd'" ;;
esac
