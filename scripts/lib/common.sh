# Shared by scripts/demo and scripts/test: dependencies, build, and private
# PostgreSQL clusters.  Source it; it defines functions only.

RAS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# rasd and rasctl run from build/ read the checkout's mappings/ (installed
# ones read DATADIR; a config's [general] mappings wins over both).
export RAS_DATADIR="$RAS_ROOT"

# Debian packages the build, the tests and the demo need.
RAS_DEB_PACKAGES=(
  gcc pkg-config meson ninja-build
  libjansson-dev libpq-dev libcurl4-openssl-dev libxml2-dev libssl-dev
  libcunit1-dev libmicrohttpd-dev libsystemd-dev zlib1g-dev
  postgresql-15 postgresql-client-15 openssl
  scdoc groff-base python3
)

say() { printf '==> %s\n' "$*"; }

# Install missing packages when root; otherwise print the exact command and stop.
ras_need_packages() {
  local missing=() p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "rasd needs these Debian packages; install them and run this again:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
}

# Configure (once) and build into $1 (default build/) with extra meson options.
ras_build() {
  local dir=${1:-build}; shift || true
  if [ ! -f "$RAS_ROOT/$dir/build.ninja" ]; then
    say "configuring $dir"
    meson setup "$RAS_ROOT/$dir" "$RAS_ROOT" "$@" >/dev/null
  fi
  say "building $dir"
  ninja -C "$RAS_ROOT/$dir" >/dev/null || { ninja -C "$RAS_ROOT/$dir"; exit 1; }
}

ras_pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -x "$d/initdb" ] || { echo "PostgreSQL server binaries not found under /usr/lib/postgresql" >&2; exit 1; }
  echo "$d"
}

# Run a command as the cluster owner: postgres when we are root (PostgreSQL
# refuses to run as root), ourselves otherwise.
ras_pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# ras_pg_start DATADIR SOCKDIR [fast]: create the cluster if needed and start
# it listening only on a Unix socket in SOCKDIR.  "fast" turns fsync off
# (throw-away test clusters only).
ras_pg_start() {
  local data=$1 sock=$2 mode=${3:-} bin
  bin=$(ras_pg_bindir)
  mkdir -p "$data" "$sock"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$data" "$sock"
    chmod 700 "$data"
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    ras_pg_as_owner "$bin/initdb" -D "$data" -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  local opts="-c listen_addresses='' -c unix_socket_directories='$sock' -c max_connections=200"
  if [ "$mode" = fast ]; then
    opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  if ! ras_pg_as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    ras_pg_as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -o "$opts" -w start >/dev/null \
      || { cat "$data/server.log" >&2; exit 1; }
  fi
}

ras_pg_stop() {
  local data=$1 bin
  bin=$(ras_pg_bindir)
  [ -f "$data/PG_VERSION" ] || return 0
  ras_pg_as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
}

# The database user to connect as: postgres when root owns nothing in PG.
ras_pg_user() {
  if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi
}
