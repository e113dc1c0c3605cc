#!/bin/bash
# Install ajs3 on a Debian 12 node: system packages, the Python package in a venv
# under /opt/ajs3, the `ajs3` command and the OCF agent ocf:ajs3:ajs3.
#
# Used as-is by the README, by CI (.ci/test), by the namespace lab and by the
# Vagrant lab, so that every one of them installs the same way.
#
#   vagrant/provision/install.sh [--dev] [--no-apt] [--exechost] [--prefix DIR]
#   vagrant/provision/install.sh --packages [--exechost] [--dev]
#
#   --dev      also install the test tools (pytest, testinfra, ruff, mypy, chromium)
#   --exechost an execution host only (docs/exechosts.md): no Pacemaker, no OCF
#              agent; sshd, ajs3 (for `ajs3 exechost serve`) and its state directory
#   --no-apt   skip the apt packages (they are already there)
#   --prefix   where the venv goes (default /opt/ajs3)
#   --packages print the apt packages this install needs, one line, and exit
#              (vagrant/box/build.sh puts them into the VM lab's box)
#
# Offline (the VM lab's VMs reach no mirror): the apt packages are already there,
# and pip takes PIP_NO_INDEX=1 and PIP_FIND_LINKS=DIR from the environment (a
# directory of wheels, vagrant/lab.sh wheels).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
prefix=/opt/ajs3
dev=0
apt=1
exechost=0
list=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dev) dev=1 ;;
        --no-apt) apt=0 ;;
        --exechost) exechost=1 ;;
        --packages) list=1 ;;
        --prefix) prefix=$2; shift ;;
        *) echo "install.sh: unknown option '$1' (see the header of $0)" >&2; exit 2 ;;
    esac
    shift
done

packages=(python3 python3-venv python3-dev gcc libc6-dev
          pacemaker corosync pacemaker-cli-utils resource-agents crmsh pcs
          kmod libxml2-utils e2fsprogs iproute2 util-linux procps psmisc
          openssh-server openssh-client sqlite3
          graphviz)
if [ "$exechost" = 1 ]; then
    packages=(python3 python3-venv python3-dev gcc libc6-dev iproute2 procps
              openssh-server openssh-client)
fi
if [ "$dev" = 1 ]; then
    # chromium and its driver: the web console's test in a real headless browser
    packages+=(shellcheck vagrant chromium chromium-driver fonts-dejavu-core)
fi
if [ "$list" = 1 ]; then
    echo "${packages[*]}"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "install.sh: run me as root (it installs packages and /opt/ajs3)" >&2
    exit 1
fi

if [ "$apt" = 1 ]; then
    missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "install.sh: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        # Debian starts services on install where it can; nothing here should run yet.
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
fi

# Debian's own interpreter: Pacemaker runs agents with a minimal PATH and no
# shell profile, so nothing may depend on a pyenv or a user's PATH.
py=/usr/bin/python3
if [ ! -x "$prefix/venv/bin/python" ]; then
    "$py" -m venv "$prefix/venv"
fi
"$prefix/venv/bin/pip" install -q --upgrade pip >/dev/null
# setuptools builds in $src/build and packs whatever it finds there: start clean so a
# module deleted from the tree is not installed again from an old build.
rm -rf "$src/build"
if [ "$dev" = 1 ]; then
    "$prefix/venv/bin/pip" install -q "${src}[dev]"
else
    "$prefix/venv/bin/pip" install -q "$src"
fi
ln -sfn "$prefix/venv/bin/ajs3" /usr/local/bin/ajs3

# An execution host keeps its runs here, per logical host (ajs3 exechost serve).
if [ "$exechost" = 1 ]; then
    install -d -m 0750 /var/lib/ajs3-exec
fi

# The OCF agent, where Pacemaker looks for provider "ajs3".
if [ "$exechost" = 0 ] && [ -f "$src/resource-agents/ajs3" ]; then
    install -D -m 0755 "$src/resource-agents/ajs3" /usr/lib/ocf/resource.d/ajs3/ajs3
fi
echo "install.sh: ajs3 $("$prefix/venv/bin/ajs3" --version 2>/dev/null || echo '?') in $prefix/venv"
