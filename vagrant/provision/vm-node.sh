#!/bin/bash
# A cluster node of the Vagrant lab, after install.sh: node.sh with the lab's
# names for /etc/hosts (given on the command line, as the Vagrantfile knows them).
#
#   vm-node.sh --hosts "ADDR NAME,ADDR NAME,..."
set -euo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
hosts=""
while [ $# -gt 0 ]; do
    case "$1" in
        --hosts) hosts=$2; shift ;;
        *) echo "vm-node.sh: unknown option '$1'" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$hosts" ] || { echo "vm-node.sh: --hosts is required" >&2; exit 2; }

file=$(mktemp)
trap 'rm -f "$file"' EXIT
tr ',' '\n' <<<"$hosts" > "$file"
bash "$here/node.sh" --hosts-file "$file"
