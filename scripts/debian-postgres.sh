#!/usr/bin/env bash
# Throwaway PostgreSQL 15 server from Debian's packages, for running seigo's db tests against a
# stock server (CI does this after the run on the embedded server).
#
# Usage:
#   scripts/debian-postgres.sh run -- <command...>
#       Installs postgresql-15 if needed (root only), creates a fresh cluster in a temp dir, starts it
#       on a free port on 127.0.0.1, runs <command> with DATABASE_URL=postgres://seigo@127.0.0.1:PORT/postgres
#       (user `seigo`, superuser, trust auth), then stops the server and removes the temp dir, whatever
#       happens (command failure, Ctrl-C, SIGTERM). Exits with the command's exit code.
#   scripts/debian-postgres.sh install
#       Only makes sure the binaries are there.
#
# Environment:
#   PG_BINDIR        where initdb/pg_ctl/postgres live (default /usr/lib/postgresql/15/bin)
#   SEIGO_PG_TMP     parent of the temp dir (default /tmp; the server's user must be able to reach it)
#   SEIGO_PG_LOG     if set, the server log is copied there before the temp dir is removed
#   SEIGO_PG_USER    (root only) the user the server runs as; created if missing (default: see below)
#
# PostgreSQL refuses to run as root: as root the server runs as `postgres` (or a system user
# `seigo-postgres` this script creates when there is no `postgres`); as anyone else, as that user.
set -euo pipefail

PG_MAJOR=15
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/$PG_MAJOR/bin}
FALLBACK_USER=seigo-postgres
SUPERUSER=seigo

log() { printf 'debian-postgres: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 2; }

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

is_root() { [[ $(id -u) -eq 0 ]]; }

# --- binaries ------------------------------------------------------------------------------------

ensure_installed() {
  if [[ -x $PG_BINDIR/initdb && -x $PG_BINDIR/pg_ctl && -x $PG_BINDIR/postgres ]]; then
    return 0
  fi
  if ! is_root; then
    die "$PG_BINDIR/initdb not found and not running as root, so cannot install it.
  Install it first:  sudo apt-get install -y --no-install-recommends postgresql-$PG_MAJOR
  (or set PG_BINDIR to a PostgreSQL $PG_MAJOR bin directory)"
  fi
  command -v apt-get >/dev/null || die "$PG_BINDIR/initdb not found and apt-get is not available"
  if pkg_installed "postgresql-$PG_MAJOR"; then
    die "postgresql-$PG_MAJOR is installed but $PG_BINDIR/initdb is missing (PG_BINDIR wrong?); not touching it"
  fi
  log "installing postgresql-$PG_MAJOR with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  # --no-upgrade: never upgrade a package that is already installed (only add what is missing).
  local apt=(apt-get -q -y --no-install-recommends --no-upgrade -o Dpkg::Use-Pty=0)
  apt-get -q update
  # postgresql-common first, so we can tell it not to create (and start) the default 'main'
  # cluster on port 5432: this script makes its own clusters and wants no system server.
  if ! pkg_installed postgresql-common; then
    "${apt[@]}" install postgresql-common </dev/null
    local conf=/etc/postgresql-common/createcluster.conf
    if [[ -f $conf ]] && ! grep -Eq '^[[:space:]]*create_main_cluster' "$conf"; then
      printf '\n# added by seigo scripts/debian-postgres.sh: no default cluster\ncreate_main_cluster = false\n' >>"$conf"
    fi
  fi
  "${apt[@]}" install "postgresql-$PG_MAJOR" </dev/null
  [[ -x $PG_BINDIR/initdb ]] || die "installed postgresql-$PG_MAJOR but $PG_BINDIR/initdb is still missing"
}

pkg_installed() {
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

# --- the unprivileged user -----------------------------------------------------------------------

PG_USER=
pick_user() {
  if ! is_root; then
    PG_USER=$(id -un)
    return
  fi
  if [[ -n ${SEIGO_PG_USER:-} ]]; then
    PG_USER=$SEIGO_PG_USER
  elif id -u postgres >/dev/null 2>&1; then
    PG_USER=postgres
  else
    PG_USER=$FALLBACK_USER
  fi
  [[ $PG_USER != root ]] || die "PostgreSQL will not run as root; pick another SEIGO_PG_USER"
  if ! id -u "$PG_USER" >/dev/null 2>&1; then
    log "creating system user $PG_USER"
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$PG_USER"
  fi
}

# Runs a command as PG_USER, from inside the temp dir (its cwd must be readable by that user).
as_pg() {
  if is_root; then
    (cd "$TMP_DIR" && runuser -u "$PG_USER" -- "$@")
  else
    (cd "$TMP_DIR" && "$@")
  fi
}

# --- port ----------------------------------------------------------------------------------------

free_port() {
  if command -v node >/dev/null; then
    node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
    return
  fi
  local port i
  for ((i = 0; i < 100; i++)); do
    port=$((20000 + RANDOM % 30000))
    # Nothing accepts a connection there: take it.
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  die "no free port found"
}

# --- cluster lifecycle ---------------------------------------------------------------------------

TMP_DIR=
PGDATA_DIR=
STARTED=
CMD_PID=

cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  set +e
  if [[ -n $STARTED && -f $PGDATA_DIR/postmaster.pid ]]; then
    log "stopping the server"
    if ! as_pg "$PG_BINDIR/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null; then
      log "fast shutdown failed; immediate shutdown"
      as_pg "$PG_BINDIR/pg_ctl" -D "$PGDATA_DIR" -m immediate -w -t 30 stop >/dev/null
    fi
    if [[ -f $PGDATA_DIR/postmaster.pid ]]; then
      local pid
      pid=$(head -n1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null)
      if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        log "server $pid still running; killing it"
        kill -KILL "$pid" 2>/dev/null
        sleep 1
      fi
    fi
  fi
  if [[ -n $TMP_DIR && -d $TMP_DIR ]]; then
    if [[ -n ${SEIGO_PG_LOG:-} && -f $TMP_DIR/postgres.log ]]; then
      mkdir -p "$(dirname "$SEIGO_PG_LOG")" && cp "$TMP_DIR/postgres.log" "$SEIGO_PG_LOG"
    fi
    rm -rf "$TMP_DIR"
  fi
  exit "$rc"
}

on_signal() {
  local sig=$1 code=$2
  log "got SIG$sig; stopping"
  if [[ -n $CMD_PID ]]; then
    kill -TERM "$CMD_PID" 2>/dev/null || true
    wait "$CMD_PID" 2>/dev/null || true
  fi
  exit "$code" # runs cleanup (EXIT trap)
}

start_server() {
  pick_user
  TMP_DIR=$(mktemp -d "${SEIGO_PG_TMP:-/tmp}/seigo-pg$PG_MAJOR.XXXXXX")
  PGDATA_DIR=$TMP_DIR/data
  mkdir -p "$TMP_DIR/sock"
  is_root && chown -R "$PG_USER:" "$TMP_DIR"

  log "initdb in $PGDATA_DIR as $PG_USER ($("$PG_BINDIR/postgres" --version))"
  if ! as_pg "$PG_BINDIR/initdb" -D "$PGDATA_DIR" -U "$SUPERUSER" --auth=trust -E UTF8 --locale=C \
    --no-instructions >"$TMP_DIR/initdb.log" 2>&1; then
    cat "$TMP_DIR/initdb.log" >&2
    die "initdb failed"
  fi
  cat >>"$PGDATA_DIR/postgresql.conf" <<EOF

# seigo scripts/debian-postgres.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = '$TMP_DIR/sock'
EOF

  local attempt port
  for attempt in 1 2 3; do
    port=$(free_port)
    STARTED=1
    if as_pg "$PG_BINDIR/pg_ctl" -D "$PGDATA_DIR" -l "$TMP_DIR/postgres.log" -w -t 120 \
      -o "-p $port" start >/dev/null; then
      PG_PORT=$port
      DATABASE_URL="postgres://$SUPERUSER@127.0.0.1:$port/postgres"
      export DATABASE_URL
      log "server up: DATABASE_URL=$DATABASE_URL"
      if command -v psql >/dev/null; then
        log "SELECT version(): $(psql "$DATABASE_URL" -XAtc 'SELECT version()')"
      fi
      return 0
    fi
    log "server did not start on port $port (attempt $attempt); log:"
    tail -n 20 "$TMP_DIR/postgres.log" >&2 || true
  done
  die "could not start PostgreSQL"
}

cmd_run() {
  [[ $# -gt 0 ]] || die "run: no command given (usage: $0 run -- <command...>)"
  ensure_installed
  trap cleanup EXIT
  trap 'on_signal INT 130' INT
  trap 'on_signal TERM 143' TERM
  trap 'on_signal HUP 129' HUP
  start_server
  # In the background so a signal to this script is handled at once (bash would otherwise wait
  # for the command to finish before running the trap); stdin stays the caller's.
  local rc=0
  "$@" <&0 &
  CMD_PID=$!
  wait "$CMD_PID" || rc=$?
  CMD_PID=
  log "command exited with $rc"
  exit "$rc"
}

main() {
  local sub=${1:-}
  shift || true
  case $sub in
    run)
      [[ ${1:-} == -- ]] && shift
      cmd_run "$@"
      ;;
    install)
      ensure_installed
      log "PostgreSQL $PG_MAJOR binaries: $PG_BINDIR ($("$PG_BINDIR/postgres" --version))"
      ;;
    -h | --help | help | '') usage ;;
    *) log "unknown subcommand: $sub"; usage ;;
  esac
}

main "$@"
