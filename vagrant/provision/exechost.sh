#!/bin/bash
# Execution hosts in the Vagrant lab (docs/exechosts.md): the steps of
# docs/runbooks/add-execution-host.md, as provisioners. The keys are made on the
# Vagrant host (the Vagrantfile, with ssh-keygen) and given here base64-encoded in
# the environment, never on the command line.
#
#   exechost.sh serve --lhost-key "LHOST PUBLIC-KEY"...
#       On an execution host, after `install.sh --exechost`: its host key from
#       $AJS3_XH_HOST_KEY (so that the nodes' known_hosts is written before it
#       boots), root logins by key with a forced command only, and for each
#       logical host one line in root's authorized_keys whose forced command is
#       `ajs3 exechost serve --lhost-key LHOST` (runbook step 3). Idempotent.
#
#   exechost.sh volume LHOST DEVICE [--mount-root DIR] --exechost "NAME ADDR KEYTYPE KEY"...
#       On the node that configures the cluster, before the group LHOST exists: the
#       file system (logical-host.sh prepare), then on it the logical host's key from
#       $AJS3_LHOST_KEY, the execution hosts' keys in known_hosts, and their
#       `execution_hosts` in ajs3.yaml (runbook steps 2 and 4). Once the group
#       exists the volume may be mounted on another node: then nothing is done.
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "exechost.sh: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "run me as root"

# $1: a variable's name; writes its base64 value, decoded, to $2 (mode 0600), and
# checks that it is an OpenSSH private key.
private_key() {
    local value=${!1:-}
    [ -n "$value" ] || die "\$$1 is empty: the Vagrantfile passes the key in it"
    (umask 077 && base64 -d <<<"$value" > "$2") || die "\$$1 is not base64"
    ssh-keygen -y -f "$2" > /dev/null 2>&1 || die "\$$1 is not an OpenSSH private key"
}

serve() {
    local pairs=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --lhost-key) pairs+=("$2"); shift ;;
            *) die "serve: unknown argument '$1'" ;;
        esac
        shift
    done
    [ "${#pairs[@]}" -gt 0 ] || die "serve needs --lhost-key \"LHOST PUBLIC-KEY\""
    local pair lh pub
    for pair in "${pairs[@]}"; do  # every argument checked before anything changes
        lh=${pair%% *}
        pub=${pair#* }
        [[ $lh =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] || die "serve: bad logical host name '$lh'"
        [[ $pub == ssh-* ]] || die "serve: '$pub' is not a public key"
    done
    local ajs3=/usr/local/bin/ajs3  # install.sh's link, as in the runbook
    [ -x "$ajs3" ] || die "$ajs3 is missing: run install.sh --exechost first"

    local tmp changed=0
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064  # the path is fixed now
    trap "rm -rf '$tmp'" EXIT
    private_key AJS3_XH_HOST_KEY "$tmp/key"
    if ! cmp -s "$tmp/key" /etc/ssh/ssh_host_ed25519_key; then
        install -m 0600 "$tmp/key" /etc/ssh/ssh_host_ed25519_key
        ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key > /etc/ssh/ssh_host_ed25519_key.pub
        changed=1
    fi
    # Debian's sshd_config reads sshd_config.d/*.conf first, in the order of their
    # names, and the first value of a keyword wins: this file's name sorts before
    # a site's own drop-ins (the VM lab's box has "PermitRootLogin no" in
    # ajs3-box.conf, which won over the ajs3-exechost.conf of earlier versions).
    local conf=/etc/ssh/sshd_config.d/00-ajs3-exechost.conf old=/etc/ssh/sshd_config.d/ajs3-exechost.conf
    printf '# ajs3 execution host: root only by key, and only with a forced command\nPermitRootLogin forced-commands-only\n' > "$tmp/conf"
    if ! cmp -s "$tmp/conf" "$conf"; then
        install -m 0644 "$tmp/conf" "$conf"
        changed=1
    fi
    if [ -e "$old" ]; then
        rm -f "$old"
        changed=1
    fi

    local keys=/root/.ssh/authorized_keys
    install -d -m 0700 /root/.ssh
    touch "$keys"
    cp "$keys" "$tmp/keys"
    for pair in "${pairs[@]}"; do
        lh=${pair%% *}
        pub=${pair#* }
        # this logical host's line of an earlier run goes; the others stay
        grep -vF -- "serve --lhost-key $lh\"" "$tmp/keys" > "$tmp/keys.new" || true
        echo "command=\"$ajs3 exechost serve --lhost-key $lh\",no-port-forwarding,no-pty,no-agent-forwarding,no-X11-forwarding $pub" >> "$tmp/keys.new"
        mv "$tmp/keys.new" "$tmp/keys"
    done
    install -m 0600 "$tmp/keys" "$keys"

    sshd -t || die "sshd refuses its configuration (see above)"
    # What sshd will do, not what this script wrote: another file may still win.
    local permit
    permit=$(sshd -T 2>/dev/null | awk '$1 == "permitrootlogin" {print $2}')
    if [ "$permit" != forced-commands-only ]; then
        die "sshd's PermitRootLogin is '${permit:-?}', not forced-commands-only: an earlier" \
            "setting wins over $conf (grep -r PermitRootLogin /etc/ssh/sshd_config /etc/ssh/sshd_config.d)"
    fi
    if [ "$changed" = 1 ] && systemctl is-active --quiet ssh 2> /dev/null; then
        systemctl reload ssh
    fi
    echo "exechost.sh: $(hostname) serves ${#pairs[@]} logical host(s) over ssh"
}

volume() {
    local root=/srv/ajs3
    local args=() hosts=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --mount-root) root=$2; shift ;;
            --exechost) hosts+=("$2"); shift ;;
            -*) die "volume: unknown option '$1'" ;;
            *) args+=("$1") ;;
        esac
        shift
    done
    [ "${#args[@]}" -eq 2 ] || die "usage: volume LHOST DEVICE --exechost \"NAME ADDR KEYTYPE KEY\"..."
    local lh=${args[0]} dev=${args[1]}
    [ "${#hosts[@]}" -gt 0 ] || die "volume needs at least one --exechost"
    # The CIB must answer: a group that exists but can not be seen would be a volume
    # mounted on another node.
    local cib="" tries=0
    until cib=$(cibadmin --query --scope resources 2>/dev/null); do
        tries=$((tries + 1))
        [ "$tries" -lt 60 ] || die "the cluster's configuration can not be read (is pacemaker up?)"
        sleep 2
    done
    if grep -q "id=\"$lh-fs\"" <<<"$cib"; then
        echo "exechost.sh: group $lh exists; its volume is left as it is"
        return 0
    fi
    if findmnt -n -S "$dev" > /dev/null; then
        die "$dev is mounted already; not touching it"
    fi
    bash "$here/logical-host.sh" prepare "$lh" "$dev"

    local mnt dir=$root/$lh
    mnt=$(mktemp -d)
    mount "$dev" "$mnt"
    # shellcheck disable=SC2064  # the paths are fixed now
    trap "umount '$mnt' && rmdir '$mnt'" EXIT
    install -d -m 0700 "$mnt/exechost"
    private_key AJS3_LHOST_KEY "$mnt/exechost/id_ed25519"
    ssh-keygen -y -f "$mnt/exechost/id_ed25519" > "$mnt/exechost/id_ed25519.pub"

    local entry name addr ktype kval known="" settings=""
    for entry in "${hosts[@]}"; do
        read -r name addr ktype kval <<<"$entry"
        [ -n "$kval" ] || die "volume: --exechost '$entry' is not \"NAME ADDR KEYTYPE KEY\""
        known+="$addr $ktype $kval"$'\n'
        settings+="  $name: {destination: $addr, user: root, identity_file: $dir/exechost/id_ed25519, known_hosts: $dir/exechost/known_hosts}"$'\n'
    done
    printf '%s' "$known" > "$mnt/exechost/known_hosts"
    if grep -q '^execution_hosts:' "$mnt/ajs3.yaml" 2>/dev/null; then
        echo "exechost.sh: $lh's ajs3.yaml names execution hosts already; left as it is"
    else
        printf 'execution_hosts:\n%s' "$settings" >> "$mnt/ajs3.yaml"
    fi
    echo "exechost.sh: $lh's volume has its key and ${#hosts[@]} execution host(s)"
}

cmd=${1:-}
[ -n "$cmd" ] || die "usage: exechost.sh serve|volume ... (see the header of $0)"
shift
case "$cmd" in
    serve) serve "$@" ;;
    volume) volume "$@" ;;
    *) die "unknown command '$cmd'" ;;
esac
