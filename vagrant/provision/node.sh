#!/bin/bash
# What a cluster node needs besides vagrant/provision/install.sh: the directories
# Corosync, Pacemaker and sshd expect (a fresh /run or a bind-mounted empty
# /var/lib/pacemaker has none of them), the cluster's names in /etc/hosts and,
# optionally, a fence agent.
#
# Run as root on every node, at every boot (the namespace lab runs it from each
# node's init; a Vagrant VM runs it as a provisioner). Idempotent.
#
#   vagrant/provision/node.sh [--hosts-file FILE] [--fence-agent FILE]
#
#   --hosts-file   lines "ADDRESS NAME" to put into /etc/hosts (a managed block,
#                  replaced on every run; the file is rewritten in place, so a
#                  bind-mounted /etc/hosts works)
#   --fence-agent  install this fence agent as /usr/sbin/<its name>
set -euo pipefail

hosts_file=
fence_agent=
while [ $# -gt 0 ]; do
    case "$1" in
        --hosts-file) hosts_file=$2; shift ;;
        --fence-agent) fence_agent=$2; shift ;;
        *) echo "node.sh: unknown option '$1' (see the header of $0)" >&2; exit 2 ;;
    esac
    shift
done

if [ "$(id -u)" != 0 ]; then
    echo "node.sh: run me as root" >&2
    exit 1
fi

install -d -o hacluster -g haclient -m 0750 /var/lib/pacemaker
install -d -o hacluster -g haclient -m 0750 \
    /var/lib/pacemaker/cib /var/lib/pacemaker/pengine \
    /var/lib/pacemaker/blackbox /var/lib/pacemaker/cores
install -d -o hacluster -g haclient -m 0770 /var/log/pacemaker
install -d -m 0755 /var/lib/corosync /var/log/corosync /var/log/cluster /run/sshd
install -d -m 0755 /srv/ajs3

if [ -n "$hosts_file" ]; then
    begin='# BEGIN ajs3 cluster (vagrant/provision/node.sh)'
    end='# END ajs3 cluster'
    current=$(awk -v b="$begin" -v e="$end" '$0==b{skip=1} !skip{print} $0==e{skip=0}' /etc/hosts)
    { printf '%s\n' "$current"; echo "$begin"; cat "$hosts_file"; echo "$end"; } > /etc/hosts.ajs3.new
    cat /etc/hosts.ajs3.new > /etc/hosts
    rm -f /etc/hosts.ajs3.new
fi

if [ -n "$fence_agent" ]; then
    install -m 0755 "$fence_agent" "/usr/sbin/$(basename "$fence_agent")"
fi
