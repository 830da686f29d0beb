#!/usr/bin/env bash
# pg-pair.sh: a PostgreSQL primary and a synchronous streaming standby as
# private, throw-away clusters (the failover test; as `postgres` when run
# as root, like ras_pg_start).  Unix sockets only: the primary listens in
# DIR/sa, the standby in DIR/sb, so a client's multi-host connection
# string is "host=DIR/sa,DIR/sb target_session_attrs=read-write".
#
#   pg-pair.sh start DIR          create both (pg_basebackup), start them, wait
#                                 until the standby is the synchronous one
#   pg-pair.sh stop-primary DIR   stop the primary at once (-m immediate)
#   pg-pair.sh start-primary DIR  start it again (a plain restart)
#   pg-pair.sh promote DIR        promote the standby (failover)
#   pg-pair.sh stop DIR           stop whatever runs
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

cmd=${1:?usage: pg-pair.sh start|stop-primary|start-primary|promote|stop DIR}
dir=${2:?usage: pg-pair.sh COMMAND DIR}
bin=$(ras_pg_bindir)
user=$(ras_pg_user)

# fsync off: the test stops servers, it never crashes the machine; commits
# are still synchronous with the standby (what the test is about).
# Only the primary waits for the standby: once promoted, the standby has
# none of its own (as Patroni would reconfigure it), so it must not wait.
opts() {  # socket-dir [synchronous-standby-names]
  echo "-c listen_addresses='' -c unix_socket_directories='$1' -c max_connections=100" \
    "-c fsync=off -c full_page_writes=off -c wal_level=replica -c max_wal_senders=4" \
    "-c wal_keep_size=64MB -c hot_standby=on -c synchronous_commit=on" \
    "-c synchronous_standby_names='${2:-}'"
}

start_one() {  # data socket-dir [synchronous-standby-names]
  ras_pg_as_owner "$bin/pg_ctl" -D "$1" -l "$1/server.log" -o "$(opts "$2" "${3:-}")" -w -t 60 start \
    >/dev/null || { cat "$1/server.log" >&2; exit 1; }
}

psql_at() {  # socket-dir sql
  ras_pg_as_owner "$bin/psql" -X -A -t -h "$1" -U "$user" -d postgres -c "$2"
}

case "$cmd" in
  start)
    mkdir -p "$dir/a" "$dir/b" "$dir/sa" "$dir/sb"
    if [ "$(id -u)" -eq 0 ]; then
      chown postgres: "$dir" "$dir/a" "$dir/b" "$dir/sa" "$dir/sb"
    fi
    chmod 700 "$dir/a" "$dir/b"
    chmod 755 "$dir" "$dir/sa" "$dir/sb"
    ras_pg_as_owner "$bin/initdb" -D "$dir/a" -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
    start_one "$dir/a" "$dir/sa" standby1
    rmdir "$dir/b"
    ras_pg_as_owner "$bin/pg_basebackup" -D "$dir/b" -d "host=$dir/sa user=$user" -X stream -c fast
    chmod 700 "$dir/b"
    ras_pg_as_owner sh -c "echo \"primary_conninfo = 'host=$dir/sa user=$user application_name=standby1'\" \
      >> '$dir/b/postgresql.auto.conf' && touch '$dir/b/standby.signal'"
    start_one "$dir/b" "$dir/sb"
    for _ in $(seq 1 100); do
      [ "$(psql_at "$dir/sa" "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'")" = sync ] \
        && exit 0
      sleep 0.2
    done
    echo "pg-pair: the standby never became synchronous" >&2
    exit 1
    ;;
  stop-primary)
    ras_pg_as_owner "$bin/pg_ctl" -D "$dir/a" -m immediate -w stop >/dev/null
    ;;
  start-primary)
    start_one "$dir/a" "$dir/sa" standby1
    ;;
  promote)
    ras_pg_as_owner "$bin/pg_ctl" -D "$dir/b" -w -t 60 promote >/dev/null
    ;;
  stop)
    for d in a b; do
      [ -f "$dir/$d/postmaster.pid" ] && ras_pg_as_owner "$bin/pg_ctl" -D "$dir/$d" -m immediate -w stop \
        >/dev/null 2>&1
    done
    exit 0
    ;;
  *)
    echo "pg-pair: unknown command $cmd" >&2
    exit 64
    ;;
esac
