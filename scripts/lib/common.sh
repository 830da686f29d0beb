# Shared by scripts/demo, scripts/test and scripts/fuzz: dependencies, build,
# private PostgreSQL clusters.  Source it; it defines functions only.
#
# Nothing here throws an error message away: each step writes its output to a
# log and prints that log when the step fails.

RAS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# rasd and rasctl run from build/ read the checkout's mappings/ (installed
# ones read DATADIR; a config's [general] mappings wins over both).
export RAS_DATADIR="$RAS_ROOT"

# Debian packages the build, the tests and the demo need.
RAS_DEB_PACKAGES=(
  gcc pkg-config meson ninja-build python3
  libjansson-dev libpq-dev libcurl4-openssl-dev libxml2-dev libssl-dev
  libcunit1-dev libmicrohttpd-dev libsystemd-dev zlib1g-dev
  libcairo2-dev libpango1.0-dev fonts-dejavu-core poppler-utils
  postgresql-15 postgresql-client-15 openssl
  scdoc groff-base python3
  # the clinicians' pages (issue 13): JOSE for the CIS2 sign-in, and the
  # browser their tests drive (headless, through npm puppeteer-core)
  libcjose-dev chromium
)
# The libFuzzer targets (scripts/test's first phase, scripts/fuzz): clang and
# its sanitizer/libFuzzer runtime, which is only a Recommends of clang-14 and
# so missing after an install with --no-install-recommends.
RAS_FUZZ_PACKAGES=(clang libclang-rt-14-dev)
# The independent FHIR validator (tests/validate).
RAS_NODE_PACKAGES=(nodejs npm)

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ras_run LOG WHAT COMMAND...: run COMMAND with its output in LOG; on failure
# print the log's last 60 lines and what failed, then exit.
ras_run() {
  local log=$1 what=$2; shift 2
  if ! "$@" >"$log" 2>&1; then
    echo "---- last lines of $log ----" >&2
    tail -n 60 "$log" >&2
    echo "----" >&2
    die "$what failed (command: $*; whole output in $log)"
  fi
}

ras_logdir() {
  local d="${RAS_LOG_DIR:-$RAS_ROOT/build-logs}"
  mkdir -p "$d" && echo "$d"
}

# ras_need_packages PKG...: one round.  Root installs every missing package
# (saying so, with apt's output kept in a log); anyone else gets the single
# apt-get command to run as root and the script stops.  No sudo is assumed.
ras_need_packages() {
  local missing=() p log
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    log="$(ras_logdir)/apt.log"
    say "installing ${#missing[@]} Debian package(s) and their dependencies (a few minutes on a fresh system; log: $log)"
    echo "    ${missing[*]}"
    ras_run "$log" "apt-get update" env DEBIAN_FRONTEND=noninteractive apt-get update
    ras_run "$log.install" "apt-get install" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends "${missing[@]}"
    say "packages installed"
  else
    {
      echo "rasd needs these Debian packages. Install them as root, then run this again:"
      echo
      echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
      echo
      echo "(for example: su -c '…the line above…' root, or with sudo if this machine has it)"
    } >&2
    exit 1
  fi
}

# ras_reachable_tree SCRIPT ARGS...: when root runs a script from a tree that
# the unprivileged users cannot enter (a clone in /root, mode 0700), rasd
# (run as nobody) and PostgreSQL (run as postgres) could not reach the
# binaries, mappings and data there.  Copy the tree (without build output)
# to a 0755 directory under /var/tmp and run the script from there instead.
ras_reachable_tree() {
  [ "$(id -u)" -eq 0 ] || return 0
  [ -n "${RAS_TREE_COPY:-}" ] && return 0
  local u blocked=
  for u in nobody postgres; do
    id "$u" >/dev/null 2>&1 || continue
    runuser -u "$u" -- test -r "$RAS_ROOT/meson.build" || { blocked=$u; break; }
  done
  [ -z "$blocked" ] && return 0
  local dest="${RAS_ROOT_COPY:-/var/tmp/rasd-$(printf '%s' "$RAS_ROOT" | sha1sum | cut -c1-8)}"
  say "$RAS_ROOT cannot be entered by user $blocked (PostgreSQL runs as postgres, rasd as nobody):"
  say "working from a copy in $dest (mode 0755; build output and ./var stay there; RAS_ROOT_COPY=DIR chooses another place)"
  mkdir -p "$dest"
  chmod 0755 "$dest"
  # refresh the sources, keep the build directories and ./var
  find "$dest" -mindepth 1 -maxdepth 1 ! -name 'build*' ! -name var -exec rm -rf {} +
  (cd "$RAS_ROOT" && tar --exclude='./build*' --exclude=./var --exclude=./.git -cf - .) \
    | tar -C "$dest" --no-same-owner -xf -
  chmod -R a+rX "$dest"
  export RAS_TREE_COPY="$RAS_ROOT"
  exec "$dest/scripts/$1" "${@:2}"
}

# Configure and build into $1 (default build/) with extra meson options
# (applied to an existing build directory too).
ras_build() {
  local dir=${1:-build}; shift || true
  # The build copies the NHS.UK frontend styles from npm (lib/ui/assets):
  # the machine's node and npm when it has them, else Debian's.
  command -v node >/dev/null && command -v npm >/dev/null || ras_need_packages "${RAS_NODE_PACKAGES[@]}"
  local log
  log="$(ras_logdir)/$dir.log"
  if [ ! -f "$RAS_ROOT/$dir/build.ninja" ]; then
    say "configuring $dir (meson setup $*)"
    ras_run "$log" "meson setup of $dir" meson setup "$RAS_ROOT/$dir" "$RAS_ROOT" "$@"
  elif [ $# -gt 0 ]; then
    ras_run "$log" "meson configure of $dir" meson configure "$RAS_ROOT/$dir" "$@"
  fi
  say "building $dir (ninja; a few minutes the first time; log: $log)"
  ras_run "$log" "building $dir" ninja -C "$RAS_ROOT/$dir"
}

ras_pg_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -x "$d/initdb" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql (Debian package postgresql-15)"
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
    runuser -u postgres -- test -w "$data" ||
      die "user postgres cannot write $data: one of its parent directories is closed to it (give them o+x, or move the tree)"
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    ras_run "$data.initdb.log" "initdb of $data" \
      ras_pg_as_owner "$bin/initdb" -D "$data" -A trust -E UTF8 --locale=C.UTF-8
  fi
  local opts="-c listen_addresses='' -c unix_socket_directories='$sock' -c max_connections=200"
  if [ "$mode" = fast ]; then
    opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  if ! ras_pg_as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then  # status: "not running" is the answer
    if ! ras_pg_as_owner "$bin/pg_ctl" -D "$data" -l "$data/server.log" -o "$opts" -w start >"$data.start.log" 2>&1; then
      cat "$data.start.log" "$data/server.log" >&2
      die "PostgreSQL did not start in $data"
    fi
  fi
}

ras_pg_stop() {
  local data=$1 bin
  bin=$(ras_pg_bindir)
  [ -f "$data/PG_VERSION" ] || return 0
  ras_pg_as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true  # best effort at exit
}

# The database user to connect as: postgres when root owns nothing in PG.
ras_pg_user() {
  if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi
}

# ras_ui_node: the pinned npm packages of tests/ui (the CIS2-like provider,
# puppeteer-core, axe-core) installed with npm ci into a cache directory,
# with tests/ui's scripts beside them (ES modules find packages next to
# themselves).  Prints the directory.
ras_ui_node() {
  local src="$RAS_ROOT/tests/ui" cache want
  cache="${RAS_NPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rasd}/ui-tests"
  want=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)
  if [ ! -d "$cache/node_modules" ] || [ "$(cat "$cache/.lock.sha256" 2>/dev/null)" != "$want" ]; then
    mkdir -p "$cache"
    cp "$src/package.json" "$src/package-lock.json" "$cache/"
    ras_run "$cache/npm.log" "npm ci of tests/ui" sh -c "cd '$cache' && npm ci --no-audit --no-fund --loglevel=error"
    echo "$want" > "$cache/.lock.sha256"
  fi
  cp "$src"/*.mjs "$cache/"
  echo "$cache"
}
