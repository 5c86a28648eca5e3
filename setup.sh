#!/usr/bin/env bash
# Set up a fresh Debian machine for rgmanager-py: system packages the agents
# and tests use, then a .venv in the repository root with the console scripts.
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    need=""
    for p in iproute2 e2fsprogs xfsprogs lvm2 psmisc resource-agents nfs-kernel-server util-linux \
             corosync; do
        dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
    done
    if [ -n "$need" ]; then
        apt-get update -qq
        apt-get install -y -qq $need >/dev/null
    fi
fi
if [ "$(id -u)" = 0 ]; then
    # The demo service's init script, at the fixed path etc/cluster.conf names.
    mkdir -p /usr/local/libexec/rgmanager-py
    ln -sfn "$PWD/etc/demo/demo-httpd" /usr/local/libexec/rgmanager-py/demo-httpd
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
