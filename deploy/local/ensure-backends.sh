#!/usr/bin/env bash
# Makes sure the backends the tests and the cluster mode need are reachable:
#   PostgreSQL on 127.0.0.1:5432 (user postgres, no password from 127.0.0.1),
#   NATS with JetStream on 127.0.0.1:4222,
# and that the PostgreSQL server binaries (initdb, pg_ctl) are on hand for the fault tests.
# Starts them if installed but stopped; installs them from Debian's packages (postgresql,
# nats-server) if absent. Safe to run again: it changes nothing that already works.
set -euo pipefail

log() { printf 'ensure-backends: %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*"; return 1; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do port_open "$port" && return 0; sleep 0.5; done
  log "$name did not open port $port"; return 1
}

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- PostgreSQL --------------------------------------------------------------------------
pg_bin_dir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

if ! port_open 5432; then
  if [ -z "$(pg_bin_dir)" ]; then
    log "installing postgresql"
    apt_install postgresql
  fi
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    if ! ls "/etc/postgresql/$version" >/dev/null 2>&1 || [ ! -d "/etc/postgresql/$version/main" ]; then
      as_root pg_createcluster "$version" main
    fi
    log "starting postgresql $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  fi
  wait_for_port 5432 postgresql
fi

if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
  # A fresh Debian install asks for a password on 127.0.0.1; the tests use trust auth there.
  hba=$(as_root su postgres -c "psql -tAc 'show hba_file'" 2>/dev/null | tr -d '[:space:]' || true)
  if [ -n "$hba" ] && ! as_root grep -q '# sunshine-tests' "$hba"; then
    log "allowing passwordless connections from 127.0.0.1 in $hba (test machine)"
    as_root sed -i "1i host all all 127.0.0.1/32 trust # sunshine-tests\nhost all all ::1/128 trust # sunshine-tests" "$hba"
    as_root su postgres -c "psql -tAc 'select pg_reload_conf()'" >/dev/null
  fi
  psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null
fi

# initdb and pg_ctl for tests that run a private PostgreSQL they may stop and kill.
if ! command -v initdb >/dev/null || ! command -v pg_ctl >/dev/null; then
  bin_dir=$(pg_bin_dir)
  if [ -n "$bin_dir" ]; then
    for tool in initdb pg_ctl postgres; do
      [ -x "/usr/local/bin/$tool" ] || as_root ln -sf "$bin_dir/$tool" "/usr/local/bin/$tool"
    done
  fi
fi

# --- NATS with JetStream ---------------------------------------------------------------
if ! port_open 4222; then
  if ! command -v nats-server >/dev/null && [ ! -x /usr/sbin/nats-server ]; then
    log "installing nats-server"
    apt_install nats-server
  fi
  nats_bin=$(command -v nats-server || echo /usr/sbin/nats-server)
  as_root mkdir -p /var/lib/nats-server
  log "starting nats-server with JetStream"
  as_root start-stop-daemon --start --oknodo --background --exec "$nats_bin" -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_for_port 4222 nats-server
fi

log "postgresql and nats are reachable"
