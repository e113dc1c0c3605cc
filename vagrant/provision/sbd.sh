#!/bin/bash
# SBD fencing on a cluster node of the Vagrant lab: the softdog watchdog, the sbd
# daemon on the shared SBD disk (started by systemd together with corosync), and
# the fence_sbd agent the cluster's fence device uses. Run before corosync starts.
# Idempotent.
#
#   sbd.sh --device DEV [--create] [--watchdog-timeout S] [--wait S]
#
#   --device   the shared SBD disk, the same path on every node
#   --create   write the SBD header (one node only; the others wait for it).
#              An existing header is never overwritten.
#   --watchdog-timeout  seconds (default 10); msgwait is twice that
#
# The cluster's stonith-timeout must exceed msgwait (vm-cluster.sh sets it).
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "sbd.sh: $*" >&2; exit 2; }
device="" create=0 timeout=10 wait=600
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device=$2; shift ;;
        --create) create=1 ;;
        --watchdog-timeout) timeout=$2; shift ;;
        --wait) wait=$2; shift ;;
        *) die "unknown option '$1' (see the header of $0)" ;;
    esac
    shift
done
[ -n "$device" ] || die "--device is required"
[ "$(id -u)" = 0 ] || die "run me as root"

if ! command -v sbd >/dev/null || [ ! -x /usr/sbin/fence_sbd ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends sbd fence-agents
fi

# No hardware watchdog in a VM: the kernel's softdog resets the VM when sbd stops
# feeding it (a hung node fences itself).
echo softdog > /etc/modules-load.d/softdog.conf
modprobe softdog
[ -c /dev/watchdog ] || die "no /dev/watchdog after modprobe softdog"

if [ "$create" = 1 ] && ! sbd -d "$device" dump >/dev/null 2>&1; then
    sbd -d "$device" -1 "$timeout" -4 $((2 * timeout)) create
fi
deadline=$((SECONDS + wait))
until sbd -d "$device" dump >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "no SBD header on $device after ${wait}s (is --create on one node?)"
    sleep 5
done

# The header's timeouts are what every sbd uses; one written with others than
# asked for is kept (a running cluster depends on it), and said.
have=$(sbd -d "$device" dump 2>/dev/null | sed -n 's/^Timeout (watchdog) *: *//p')
if [ "$have" != "$timeout" ]; then
    echo "sbd.sh: warning: the SBD header on $device has watchdog timeout ${have:-?}s, not ${timeout}s;" \
        "kept (re-create it with 'sbd -d $device -1 $timeout -4 $((2 * timeout)) create' while no node runs sbd)" >&2
fi

cat > /etc/default/sbd <<CONF
# Written by vagrant/provision/sbd.sh
SBD_DEVICE=$device
SBD_WATCHDOG_DEV=/dev/watchdog
SBD_WATCHDOG_TIMEOUT=$timeout
SBD_PACEMAKER=yes
SBD_STARTMODE=always
SBD_DELAY_START=no
SBD_TIMEOUT_ACTION=flush,reboot
CONF
# sbd.service is started and stopped with corosync.
systemctl enable sbd >/dev/null
echo "sbd.sh: $device (watchdog ${timeout}s, msgwait $((2 * timeout))s)"
