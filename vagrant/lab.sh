#!/bin/bash
# The VM lab's libvirt, in a network namespace of its own: libvirtd (and with it
# every VM, every libvirt network and its dnsmasq) runs inside a namespace that
# this script creates and deletes, so no VM traffic can leave the machine; Vagrant
# runs inside it too (it reaches the VMs over their networks) and talks to that
# libvirtd through its socket.
#
#   vagrant/lab.sh up                    # namespace + libvirtd
#   vagrant/lab.sh vagrant ARGS...       # e.g. vagrant up storage, vagrant ssh node1
#   vagrant/lab.sh virsh ARGS...         # the lab's libvirtd
#   vagrant/lab.sh infra [PYTEST ARGS]   # tests/infra against the VMs (vagrant ssh-config)
#   vagrant/lab.sh failover [PYTEST ARGS]  # tests/vm: power off lh1's node, check the ledger
#   vagrant/lab.sh status
#   vagrant/lab.sh down                  # everything gone, also after a failure
#   vagrant/lab.sh smoke [--provision] [VM]   # up, boot VM (default storage), ssh, down
#   vagrant/lab.sh check                 # the VM tier: box, up, every VM, infra, failover, down
#   vagrant/lab.sh settle [NODE]         # wait until the cluster has nothing left to do
#
# libvirtd runs in the namespace with its own /etc/libvirt, /run/libvirt,
# /var/lib/libvirt, /var/log/libvirt and /var/cache/libvirt (bind mounts of
# directories under the state directory, in a mount namespace of its own), so a
# libvirt of the host's, if any, is neither seen nor touched. Every process the lab
# starts runs in the namespace; `down` destroys and undefines the domains, networks
# and storage pools (volumes deleted), stops libvirtd by its recorded pid, then any
# process still in the namespace by pid, and deletes the namespace. What `down`
# needs is recorded in STATE/lab.env before it is made.
#
# Environment: AJS3_VM_DIR (default /var/tmp/ajs3-vm; the state is AJS3_VM_DIR/lab,
# Vagrant's home AJS3_VM_DIR/vagrant.d, where vagrant/box/build.sh adds the box),
# AJS3_VM_NETNS (default ajs3-vm). Heavy commands run at nice 19, ionice idle.
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "lab.sh: $*" >&2; exit 2; }
say() { echo "lab.sh: $*"; }
here=$(cd "$(dirname "$0")" && pwd)

vm_dir=${AJS3_VM_DIR:-/var/tmp/ajs3-vm}
state=$vm_dir/lab
env_file=$state/lab.env
ns=${AJS3_VM_NETNS:-ajs3-vm}
sock=$state/run/libvirt-sock
uri="qemu:///system?socket=$sock"
low=(nice -n 19 ionice -c 3)

# What `down` reads: KEY=VALUE lines, appended before the thing they name exists.
record() { echo "$1=$2" >>"$env_file"; }
recorded() { sed -n "s/^$1=//p" "$env_file" 2>/dev/null | tail -n 1; }

# One up/down/smoke at a time.
lock() {
    mkdir -p "$vm_dir"
    exec 9>"$vm_dir/lab.lock"
    flock -n 9 || die "another lab.sh up, down or smoke holds $vm_dir/lab.lock"
}

# A pid runs (a zombie, dead and not yet reaped by its parent, does not).
alive() {
    local stat
    [ -n "$1" ] && stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

lab_virsh() { virsh -q -c "$uri" "$@"; }

# The wheels install.sh needs in a VM, which reaches no PyPI: ajs3's dependencies,
# its build requirements and pip, for Debian 12's Python (the host's own and the
# box's). Fetched before the namespace exists (the host's network); the
# Vagrantfile syncs them to /ajs3-wheels and sets PIP_NO_INDEX for install.sh.
wheels=$vm_dir/wheels
make_wheels() {
    local repo venv=$vm_dir/wheel-venv t0
    t0=$(date +%s)
    repo=$(cd "$here/.." && pwd)
    [ -x "$venv/bin/pip" ] || /usr/bin/python3 -m venv "$venv"
    rm -rf "$wheels.new"
    "${low[@]}" "$venv/bin/pip" download -q --disable-pip-version-check -d "$wheels.new" \
        "$repo" pip setuptools wheel 2> >(grep -v "^WARNING: Location" >&2) ||
        die "pip download of ajs3's wheels failed"
    rm -rf "$wheels"
    mv "$wheels.new" "$wheels"
    say "wheels for the VMs in $wheels ($(find "$wheels" -name '*.whl' | wc -l) files, $(($(date +%s) - t0)) s)"
}

# nice 19 alone does not lower the VMs: with scheduler autogroups
# (kernel.sched_autogroup_enabled), nice weighs only inside a session, and libvirt
# starts each QEMU in a session of its own. So every process of the namespace has
# its autogroup's nice set to 19 (seen here: 4 VMs booting beside a CI run at
# nice 0 took half the CPU until this was done).
low_autogroups() {
    local pid
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
        if [ -w "/proc/$pid/autogroup" ]; then echo 19 >"/proc/$pid/autogroup" 2>/dev/null || true; fi
    done
}

cmd_up() {
    [ "$(id -u)" = 0 ] || die "run me as root (network namespaces, libvirtd)"
    bash "$here/host-setup.sh" --check >/dev/null || die "packages missing: run vagrant/host-setup.sh"
    if [ -e "$env_file" ]; then
        die "$state holds a lab already (maker pid $(recorded MAKER)): run 'vagrant/lab.sh down' first"
    fi
    if ip netns list | grep -qx "$ns\( .*\)\?"; then
        die "network namespace $ns exists but is not in $env_file: another lab? set AJS3_VM_NETNS"
    fi
    local t0 d
    t0=$(date +%s)
    # A half-made lab is taken down again (the caller clears this trap on success).
    make_wheels
    trap 'say "up failed: taking down what was made"; cmd_down' EXIT
    mkdir -p "$state"
    record MAKER $$
    record NETNS "$ns"
    ip netns add "$ns"
    ip -n "$ns" link set lo up

    for d in etc/qemu run lib/images log cache; do mkdir -p "$state/$d"; done
    cat >"$state/etc/libvirtd.conf" <<'EOF'
# The VM lab's libvirtd (vagrant/lab.sh): only root, through the unix socket.
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
unix_sock_admin_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
    cat >"$state/etc/qemu.conf" <<'EOF'
# The VM lab's QEMU driver (vagrant/lab.sh). QEMU runs as root in the lab's
# namespaces: the box's kernel and disks are root's files under /var/tmp; no
# per-VM mount namespace or cgroup (the lab's mount namespace has no cgroup file
# system), no AppArmor/SELinux labels, and QEMU writes its own logs (no virtlogd).
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = []
cgroup_controllers = []
stdio_handler = "file"
EOF
    : >"$state/etc/libvirt.conf"

    # Started by pid: `ip netns exec` gives the command a mount namespace of its
    # own, where the bind mounts live, and execs it (setsid too: a background job
    # is no process group leader, so setsid needs no fork), so $! is libvirtd's
    # pid, in a session of its own (low_autogroups lowers it, not the caller's). It
    # does not inherit the lock (fd 9), or it would hold it until `down`.
    local mounts="mount --bind $state/etc /etc/libvirt && mount --bind $state/run /run/libvirt"
    mounts+=" && mount --bind $state/lib /var/lib/libvirt && mount --bind $state/log /var/log/libvirt"
    mounts+=" && mount --bind $state/cache /var/cache/libvirt"
    mkdir -p /etc/libvirt /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt
    "${low[@]}" ip netns exec "$ns" setsid sh -c "$mounts && exec libvirtd --pid-file /run/libvirt/libvirtd.pid" \
        </dev/null >>"$state/log/libvirtd.out" 2>&1 9>&- &
    record LIBVIRTD $!
    local _
    for _ in $(seq 1 120); do
        if lab_virsh version >/dev/null 2>&1; then break; fi
        alive "$(recorded LIBVIRTD)" || die "libvirtd exited: see $state/log/libvirtd.out and libvirtd.log"
        sleep 0.5
    done
    lab_virsh version >/dev/null || die "libvirtd did not answer on $sock within 60 s"
    low_autogroups
    say "up in $(($(date +%s) - t0)) s: namespace $ns, libvirtd pid $(recorded LIBVIRTD), $uri"
}

# Vagrant inside the namespace, with the lab's Vagrant home (the box), libvirtd,
# state directory and console logs; never asks the network for updates. While it
# runs, the VMs it starts are lowered (low_autogroups) every few seconds.
cmd_vagrant() {
    [ -e "$env_file" ] || die "no lab: run 'vagrant/lab.sh up' first"
    mkdir -p "$state/consoles"
    (while sleep 3; do low_autogroups; done) 9>&- &
    local keeper=$! rc=0
    (
        cd "$here"
        exec "${low[@]}" ip netns exec "$ns" env \
            VAGRANT_HOME="$vm_dir/vagrant.d" \
            VAGRANT_DOTFILE_PATH="$state/dot" \
            VAGRANT_DEFAULT_PROVIDER=libvirt \
            VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_BOX_UPDATE_CHECK_DISABLE=1 VAGRANT_NO_COLOR=1 \
            LIBVIRT_DEFAULT_URI="$uri" \
            AJS3_VM_CONSOLE_DIR="$state/consoles" \
            AJS3_WHEELS="$wheels" \
            vagrant "$@"
    ) || rc=$?
    kill "$keeper" 2>/dev/null || true
    wait "$keeper" 2>/dev/null || true
    low_autogroups
    return "$rc"
}

# pytest inside the namespace (where the VMs' addresses are), over `vagrant
# ssh-config`: tests/infra as against the namespace lab (infra), or the VM lab's
# failover test, tests/vm (failover; it powers a node off through the lab's virsh).
lab_pytest() {
    [ -e "$env_file" ] || die "no lab: run 'vagrant/lab.sh up' first"
    local python=${AJS3_PYTHON:-/opt/ajs3/venv/bin/python} repo
    repo=$(cd "$here/.." && pwd)
    "$python" -c 'import testinfra' 2>/dev/null ||
        die "$python has no testinfra: run 'vagrant/provision/install.sh --dev' (or set AJS3_PYTHON)"
    cmd_vagrant ssh-config >"$state/ssh_config"
    say "pytest $1 over $state/ssh_config ($(grep -c '^Host ' "$state/ssh_config") hosts)"
    (cd "$repo" && ip netns exec "$ns" env AJS3_VM_SSH_CONFIG="$state/ssh_config" \
        AJS3_VM_VIRSH_URI="$uri" "$python" -m pytest "$@" -v -p no:cacheprovider \
        --ssh-config="$state/ssh_config")
}

cmd_status() {
    if [ ! -e "$env_file" ]; then
        say "no lab in $state"
        return 0
    fi
    say "namespace $(recorded NETNS), libvirtd pid $(recorded LIBVIRTD)" \
        "($(alive "$(recorded LIBVIRTD)" && echo running || echo gone))"
    lab_virsh list --all || true
    lab_virsh net-list --all || true
    lab_virsh pool-list --all || true
}

# Stop one pid: TERM, up to 30 s, then KILL.
stop_pid() {
    local pid=$1 what=$2 _
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do
        alive "$pid" || { say "stopped $what (pid $pid)"; return 0; }
        sleep 0.5
    done
    kill -KILL "$pid" 2>/dev/null || true
    say "killed $what (pid $pid)"
}

cmd_down() {
    [ "$(id -u)" = 0 ] || die "run me as root"
    if [ ! -e "$env_file" ]; then
        say "no lab in $state: nothing to do"
        return 0
    fi
    local t0 libvirtd ns_rec name pool vol pid pids="" left=""
    t0=$(date +%s)
    libvirtd=$(recorded LIBVIRTD)
    ns_rec=$(recorded NETNS)
    # A recorded pid is libvirtd's only while that pid is a libvirtd (after a
    # crash and a reboot it may be anyone's).
    if [ -n "$libvirtd" ] && [ "$(cat "/proc/$libvirtd/comm" 2>/dev/null)" != libvirtd ]; then
        say "libvirtd (pid $libvirtd) is gone"
        libvirtd=""
    fi
    # Every process of the lab: libvirtd and all that runs in its namespace.
    if [ -n "$ns_rec" ] && [ -e "/run/netns/$ns_rec" ]; then pids=$(ip netns pids "$ns_rec"); fi
    if alive "$libvirtd" && lab_virsh version >/dev/null 2>&1; then
        for name in $(lab_virsh list --all --name); do
            lab_virsh destroy "$name" >/dev/null 2>&1 || true
            lab_virsh undefine "$name" >/dev/null && say "destroyed and undefined domain $name"
        done
        for name in $(lab_virsh net-list --all --name); do
            lab_virsh net-destroy "$name" >/dev/null 2>&1 || true
            lab_virsh net-undefine "$name" >/dev/null && say "removed network $name"
        done
        for pool in $(lab_virsh pool-list --all --name); do
            lab_virsh pool-start "$pool" >/dev/null 2>&1 || true
            for vol in $(lab_virsh vol-list "$pool" | awk '{print $1}'); do
                lab_virsh vol-delete --pool "$pool" "$vol" >/dev/null && say "deleted volume $pool/$vol"
            done
            lab_virsh pool-destroy "$pool" >/dev/null 2>&1 || true
            lab_virsh pool-undefine "$pool" >/dev/null && say "removed pool $pool"
        done
        say "checked: libvirtd lists $(lab_virsh list --all --name | wc -l) domains," \
            "$(lab_virsh net-list --all --name | wc -l) networks," \
            "$(lab_virsh pool-list --all --name | wc -l) pools"
    elif [ -n "$libvirtd" ]; then
        say "libvirtd (pid $libvirtd) is not answering: its processes are stopped by pid below"
    fi
    [ -z "$libvirtd" ] || stop_pid "$libvirtd" libvirtd
    if [ -n "$ns_rec" ] && [ -e "/run/netns/$ns_rec" ]; then
        # Whatever is left in the namespace (a QEMU or dnsmasq libvirtd did not
        # stop) was started by this lab: the namespace is the lab's own.
        for pid in $(ip netns pids "$ns_rec"); do stop_pid "$pid" "$(cat "/proc/$pid/comm" 2>/dev/null)"; done
        ip netns delete "$ns_rec"
        say "deleted namespace $ns_rec"
    fi
    pids=$(echo "$libvirtd $pids" | tr ' ' '\n' | sed '/^$/d' | sort -un)
    for pid in $pids; do
        # libvirt signals a network's dnsmasq and does not wait for it.
        for _ in $(seq 1 20); do alive "$pid" || break; sleep 0.5; done
        if alive "$pid"; then left+=" $pid"; fi
    done
    [ -z "$left" ] || die "processes of the lab still run:$left"
    if [ -n "$ns_rec" ] && ip netns list | grep -qx "$ns_rec\( .*\)\?"; then
        die "namespace $ns_rec is still there"
    fi
    say "checked: the lab's $(echo "$pids" | wc -w) processes are gone, and namespace $ns_rec"
    # Keep the logs of the last lab; the rest (disks, libvirt's state) goes.
    rm -rf --one-file-system "$vm_dir/last-lab-logs"
    mkdir -p "$vm_dir/last-lab-logs"
    cp -a "$state/log/." "$state/consoles" "$vm_dir/last-lab-logs/" 2>/dev/null || true
    rm -rf --one-file-system "$state"
    # Vagrant's index of machines forgets those whose state ($state/dot) is gone;
    # pruning loads each machine's environment, which leaves a $state/dot/rgloader.
    VAGRANT_HOME="$vm_dir/vagrant.d" VAGRANT_CHECKPOINT_DISABLE=1 \
        vagrant global-status --prune >/dev/null 2>&1 || true
    rm -rf --one-file-system "$state"
    say "down in $(($(date +%s) - t0)) s (logs kept in $vm_dir/last-lab-logs)"
}

# The proof that a VM boots here: up, `vagrant up VM`, `vagrant ssh VM -c 'uname
# -a'`, down (also when a step fails), each step timed.
cmd_smoke() {
    local provision=--no-provision vm=storage
    while [ $# -gt 0 ]; do
        case "$1" in
            --provision) provision=--provision ;;
            -*) die "smoke: unknown option '$1'" ;;
            *) vm=$1 ;;
        esac
        shift
    done
    bash "$here/box/build.sh"
    cmd_up
    # From here on the lab is taken down however the smoke ends.
    trap 'cmd_down' EXIT
    local t0 t1 t2 booting booted log=$state/log/vagrant-up.log
    t0=$(date +%s)
    # Each line stamped with the seconds since the start (without the box upload's
    # progress line, redrawn a thousand times), and kept in the lab's logs.
    cmd_vagrant up "$vm" "$provision" | stdbuf -oL tr '\r' '\n' | grep --line-buffered -v 'Progress: [0-9]*%' |
        stamp "$t0" | tee "$log"
    t1=$(date +%s)
    cmd_vagrant ssh "$vm" -c 'uname -a; systemd-analyze || true'
    t2=$(date +%s)
    booting=$(sed -n 's/^\[ *\([0-9]*\) s\] ==> [a-z0-9]*: Starting domain.*/\1/p' "$log")
    booted=$(sed -n 's/^\[ *\([0-9]*\) s\] ==> [a-z0-9]*: Machine booted and ready.*/\1/p' "$log")
    say "smoke: vagrant up $vm $provision $((t1 - t0)) s (domain started at ${booting:-?} s," \
        "ssh ready at ${booted:-?} s: boot to ssh $((${booted:-0} - ${booting:-0})) s)," \
        "vagrant ssh -c $((t2 - t1)) s"
}

# Until the cluster has nothing left to do (crm_resource --wait: the groups the
# last node just created are started), seen from NODE; then its status. The checks
# of tests/infra are of a settled cluster (a first run of them right after
# `vagrant up` found lh1 still starting).
cmd_settle() {
    local node=${1:-node1}
    cmd_vagrant ssh "$node" -c 'sudo crm_resource --wait --timeout=900 && sudo crm_mon -1'
}

# The VM tier, run before a release (vagrant/README.md): the box, the lab, the
# storage VM, then the nodes and execution hosts in parallel with every
# provisioning script, tests/infra and tests/vm against them, and down however it
# ends. Each step is timed; the exit status is the first failure's.
cmd_check() {
    local t0 rc=0 failed=""
    run_step() {
        local s0 step_rc=0
        s0=$(date +%s)
        say "check: $* ..."
        "$@" || step_rc=$?
        say "check: $* -> exit $step_rc in $(($(date +%s) - s0)) s"
        if [ "$step_rc" != 0 ] && [ -z "$failed" ]; then failed="$*"; rc=$step_rc; fi
        return "$step_rc"
    }
    t0=$(date +%s)
    run_step bash "$here/box/build.sh" || return "$rc"
    run_step cmd_up || return "$rc"
    trap 'cmd_down' EXIT
    local vms=()
    # every machine of the Vagrantfile but the storage VM, which comes up first
    mapfile -t vms < <(cmd_vagrant status --machine-readable |
        awk -F, '$3 == "state" && $2 != "storage" {print $2}')
    [ "${#vms[@]}" -gt 0 ] || die "check: no VMs in the Vagrantfile besides storage"
    [[ ${vms[0]} == node* ]] || die "check: the first VM after storage is ${vms[0]}, not a node"
    if run_step cmd_vagrant up storage && run_step cmd_vagrant up "${vms[@]}" &&
        run_step cmd_settle "${vms[0]}"; then
        run_step lab_pytest tests/infra -q || true
        run_step lab_pytest tests/vm -s || true
    fi
    if [ -n "$failed" ]; then
        say "check: $(($(date +%s) - t0)) s before down; first failure: $failed"
    else
        say "check: $(($(date +%s) - t0)) s before down; every step passed"
    fi
    return "$rc"
}

# Prefix each line of stdin with the seconds since $1 (a date +%s).
stamp() {
    local line
    while IFS= read -r line; do
        printf '[%4d s] %s\n' "$(($(date +%s) - $1))" "$line"
    done
}

[ $# -ge 1 ] || die "usage: lab.sh up|vagrant ARGS|virsh ARGS|status|down|smoke [--provision] [VM]"
command=$1
shift
case "$command" in
    up) lock; cmd_up; trap - EXIT ;;
    down) lock; cmd_down ;;
    vagrant) cmd_vagrant "$@" ;;
    virsh) lab_virsh "$@" ;;
    infra) lab_pytest tests/infra "$@" ;;
    failover) lab_pytest tests/vm "$@" ;;
    status) cmd_status ;;
    smoke) lock; cmd_smoke "$@" ;;
    check) lock; cmd_check ;;
    settle) cmd_settle "$@" ;;
    *) die "unknown command '$command' (see the header of $0)" ;;
esac
