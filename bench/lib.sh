# shellcheck shell=bash
# Shared helpers for the benchmark scripts in bench/: throwaway PostgreSQL clusters, psql
# shortcuts and small statistics. Source it; it defines functions and a few variables only.
#
# Clusters listen on 127.0.0.1 only (no Unix socket), trust local connections, and belong to
# the postgres user when the script runs as root (PostgreSQL refuses to run as root).

# Empty when pg_config is missing (scripts/quickstart sources this before it installs PostgreSQL;
# under set -e a failing substitution here would end the caller silently).
PG_BINDIR=${PG_BINDIR:-$(pg_config --bindir 2>/dev/null || true)}

die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 1; }
note() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }

# Runs a server-side command as the owner of the clusters.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Succeeds when something accepts TCP connections on 127.0.0.1:$1.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Prints the first port at or above $1 that is free, with the next one free too when $2 is 2.
free_port() {
  local port=$1 want=${2:-1}
  while [ "$port" -lt 65000 ]; do
    if ! port_in_use "$port" && { [ "$want" -lt 2 ] || ! port_in_use $((port + 1)); }; then
      echo "$port"; return 0
    fi
    port=$((port + want))
  done
  return 1
}

# cluster_init DATADIR PORT [postgresql.conf lines...]: a fresh cluster, trust auth, TCP only.
cluster_init() {
  local datadir=$1 port=$2; shift 2
  mkdir -p "$datadir"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$datadir"
  chmod 700 "$datadir"
  as_pg "$PG_BINDIR/initdb" -D "$datadir" -U postgres --auth=trust --encoding=UTF8 \
    --locale=C.UTF-8 >"$datadir.initdb.log" 2>&1 \
    || { cat "$datadir.initdb.log" >&2; die "initdb $datadir failed"; }
  {
    echo "# Added by ${0##*/}."
    echo "port = $port"
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = ''"
    local line
    for line in "$@"; do echo "$line"; done
  } | as_pg tee -a "$datadir/postgresql.conf" >/dev/null
}

# cluster_start DATADIR: starts it and waits until it accepts connections.
cluster_start() {
  as_pg "$PG_BINDIR/pg_ctl" -D "$1" -l "$1.log" -w -t 60 start >/dev/null \
    || { tail -n 30 "$1.log" >&2; die "could not start the cluster in $1 (log above)"; }
}

# cluster_stop DATADIR: fast shutdown, quietly; nothing to do when it is not running.
cluster_stop() {
  [ -f "$1/postmaster.pid" ] || return 0
  as_pg "$PG_BINDIR/pg_ctl" -D "$1" -m fast -w -t 60 stop >/dev/null 2>&1 \
    || as_pg "$PG_BINDIR/pg_ctl" -D "$1" -m immediate -w stop >/dev/null 2>&1 || true
}

# q PORT SQL...: runs SQL in database app as postgres, unaligned, tuples only, stops on error.
q() {
  local port=$1; shift
  psql -X -q -v ON_ERROR_STOP=1 -At -h 127.0.0.1 -p "$port" -U postgres -d app -c "$*"
}

# qdb PORT DB SQL...: like q, in database DB.
qdb() {
  local port=$1 db=$2; shift 2
  psql -X -q -v ON_ERROR_STOP=1 -At -h 127.0.0.1 -p "$port" -U postgres -d "$db" -c "$*"
}

# wait_until SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds; fails after SECONDS.
wait_until() {
  local seconds=$1; shift
  local deadline=$(( $(date +%s) + seconds ))
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}
# wait_for SECONDS WHAT COMMAND...: the same, and the run fails when time runs out.
wait_for() {
  local seconds=$1 what=$2; shift 2
  wait_until "$seconds" "$@" || die "timed out after ${seconds}s waiting for $what"
}

# Option parsing: need_value OPTION "$@" (OPTION must have a non-empty value), positive_int
# OPTION VALUE (1 to 999,999,999); both exit 2 with a message naming the script and the option.
need_value() { if [ "$#" -lt 2 ] || [ -z "$2" ]; then echo "${0##*/}: $1 needs a value (try --help)" >&2; exit 2; fi; }
positive_int() { [[ $2 =~ ^[1-9][0-9]{0,8}$ ]] || { echo "${0##*/}: $1 wants a positive integer (at most 9 digits), got '$2'" >&2; exit 2; }; }

# median VALUES...: the median (mean of the middle two for an even count), printed with
# MEDIAN_FORMAT (default %.1f).
median() {
  printf '%s\n' "$@" | sort -g | awk -v fmt="${MEDIAN_FORMAT:-%.1f}\n" '{ v[NR] = $1 } END {
    if (NR == 0) exit 1
    if (NR % 2) printf fmt, v[(NR + 1) / 2]
    else printf fmt, (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# setting_line ARG: a --setting argument (NAME=VALUE) as a postgresql.conf line. Blanks around
# the name and the value are dropped, and a value already in single quotes is kept as it is (so
# "synchronous_commit = off" and "shared_buffers='1GB'" both work); anything else exits 2 naming
# the argument. Run it as line=$(setting_line "$2") || exit 2.
setting_line() {
  local kv=$1 name value
  name=${kv%%=*} value=${kv#*=}
  name=${name#"${name%%[![:space:]]*}"} name=${name%"${name##*[![:space:]]}"}
  value=${value#"${value%%[![:space:]]*}"} value=${value%"${value##*[![:space:]]}"}
  if [[ $kv != *=* || ! $name =~ ^[A-Za-z_][A-Za-z0-9_.]*$ || -z $value ]]; then
    echo "${0##*/}: --setting wants NAME=VALUE, a postgresql.conf parameter and its value (e.g. --setting work_mem=64MB), got '$kv'" >&2
    exit 2
  fi
  [[ $value =~ ^\'.*\'$ ]] || value="'${value//\'/\'\'}'"
  printf '%s = %s\n' "$name" "$value"
}

# fd_open FD: whether file descriptor FD is open here. A trap can run inside the redirections of
# the command it interrupted, one of which may have closed FD (cluster_start ... {err}>&-); an
# `exec 2>&FD` there fails and, exec being a special builtin, ends the script mid-cleanup.
# (Not `{ true >&FD; } 2>/dev/null`: the group's own redirection saves stderr on the lowest free
# descriptor from 10 up, which can be FD itself.)
fd_open() { [ -e "/proc/self/fd/$1" ]; }

min_of() { printf '%s\n' "$@" | sort -g | head -n 1; }
max_of() { printf '%s\n' "$@" | sort -g | tail -n 1; }
