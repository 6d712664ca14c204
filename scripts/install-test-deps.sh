#!/usr/bin/env bash
# Installs what uturn's integration tests start for real (uturn/tests/):
#
# - coturn: `turnutils_uclient` / `turnutils_peer` are independent TURN test
#   clients, and `turnserver` is the reference server the harness was
#   validated against. Its own service must not run: it would take 3478.
# - chromium + chromium-driver: the WebRTC relay test (tests/chromium.rs).
# - clang, iproute2: the eBPF build and network-namespace tests;
#   linux-libc-dev: the kernel UAPI headers the XDP program includes;
#   ethtool, curl: the XDP tests (veth offloads, metrics from inside a netns).
# - openssl: the independent DTLS-SRTP peer (s_client/s_server) of
#   controlplane/dtls/tests/openssl_interop.rs.
# - Python: aioice (an independent TURN client) and selenium (drives
#   chromedriver), pinned so every machine runs the same clients.
#
# Idempotent and non-interactive; skips apt entirely when everything is
# already installed, so repeated CI runs stay fast. Needs root (uses sudo
# when not root and sudo exists).
set -euo pipefail

APT_PACKAGES=(coturn chromium chromium-driver clang iproute2 linux-libc-dev ethtool curl python3 python3-pip openssl)
PY_PACKAGES=("aioice==0.13.0" "selenium==4.51.0")

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
else
    echo "install-test-deps: must run as root (or with sudo available)" >&2
    exit 1
fi

# --- apt ---------------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-test-deps: apt-get install ${missing[*]}"
    # Keep maintainer scripts from starting services (coturn's would bind
    # 3478) while installing: exit code 101 means "action forbidden".
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
        "${SUDO[@]}" chmod +x "$policy"
        created_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}"
    if [ "$created_policy" -eq 1 ]; then
        "${SUDO[@]}" rm -f "$policy"
    fi
else
    echo "install-test-deps: apt packages already installed"
fi

# --- coTURN's own service: never running, never enabled ----------------------
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    "${SUDO[@]}" systemctl disable --now coturn >/dev/null 2>&1 || true
fi
if [ -x /etc/init.d/coturn ]; then
    "${SUDO[@]}" /etc/init.d/coturn stop >/dev/null 2>&1 || true
    if command -v update-rc.d >/dev/null 2>&1; then
        "${SUDO[@]}" update-rc.d coturn disable >/dev/null 2>&1 || true
    fi
fi
# Debian's package also gates the SysV script on this switch; keep it off.
if [ -f /etc/default/coturn ]; then
    "${SUDO[@]}" sed -i 's/^TURNSERVER_ENABLED=1/#TURNSERVER_ENABLED=1/' /etc/default/coturn
fi

# --- Python packages -----------------------------------------------------------
py_missing=()
for spec in "${PY_PACKAGES[@]}"; do
    name="${spec%%==*}"
    want="${spec##*==}"
    have="$(python3 -c "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null || true)"
    if [ "$have" != "$want" ]; then
        py_missing+=("$spec")
    fi
done

if [ "${#py_missing[@]}" -gt 0 ]; then
    echo "install-test-deps: pip install ${py_missing[*]}"
    pip_args=(install --quiet --disable-pip-version-check)
    # Debian's own python3 is "externally managed" (PEP 668); a pyenv or
    # venv interpreter is not. The test machines are disposable, so
    # installing into the system interpreter is what we want there.
    if python3 -c 'import sys, sysconfig, os; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED")) else 1)'; then
        pip_args+=(--break-system-packages)
    fi
    python3 -m pip "${pip_args[@]}" "${py_missing[@]}"
else
    echo "install-test-deps: python packages already installed"
fi

echo "install-test-deps: done"
