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
    # fence-agents: Debian's fence_dummy is driven through our fencing in the
    # tests (its recommends are not needed).
    lean=""
    dpkg -s fence-agents >/dev/null 2>&1 || lean="fence-agents"
    if [ -n "$need$lean" ]; then
        apt-get update -qq
        [ -z "$need" ] || apt-get install -y -qq $need >/dev/null
        [ -z "$lean" ] || apt-get install -y -qq --no-install-recommends $lean >/dev/null
    fi
fi
if [ "$(id -u)" = 0 ]; then
    # The demo service's init script at the fixed path etc/cluster.conf names:
    # a launcher, the same file for every checkout (no symlink into the last
    # checkout that ran setup), that runs the calling checkout's
    # etc/demo/demo-httpd.  Replaced atomically, and only when it differs.
    libexec=/usr/local/libexec/rgmanager-py
    mkdir -p "$libexec"
    if [ -L "$libexec/demo-httpd" ] || ! cmp -s etc/demo/demo-httpd-launcher "$libexec/demo-httpd"; then
        tmp=$(mktemp "$libexec/.demo-httpd.XXXXXX")
        cat etc/demo/demo-httpd-launcher > "$tmp"
        chmod 0755 "$tmp"
        mv -f "$tmp" "$libexec/demo-httpd"
    fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
