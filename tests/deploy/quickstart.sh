#!/usr/bin/env bash
# scripts/quickstart, the README's first command, end to end (its dependency step skipped and this
# build's binary used: the test must not install packages or build again):
#   - a short run replicates the live workload, compares both sides and exits 0, leaving the
#     replicator and both clusters running; a change made by hand afterwards reaches the target;
#     `scripts/quickstart stop` then stops all of them;
#   - SIGTERM during the workload stops everything the run started (exit 143);
#   - a replicator that dies during the run fails it (exit 1, its log shown) and everything the
#     run started is stopped;
#   - a bad option exits 2 naming it.
# Usage: quickstart.sh REPO PGFERRY_BINARY
set -u
repo=$1 binary=$2
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

tmp=$(mktemp -d)
chmod 755 "$tmp"  # the clusters live in the quickstart directory only if postgres can reach it
qs=$tmp/qs
# Whatever a failed check left running is stopped by the script's own stop, by its PID files.
trap 'PGFERRY_QUICKSTART_DIR=$qs "$repo/scripts/quickstart" stop >/dev/null 2>&1 </dev/null; rm -rf "$tmp"' EXIT

# start_quickstart BINARY ARGS...: starts it in the background with BINARY as pgferry, on this
# test's directory, a port range of its own, output in $tmp/out. $! is timeout's PID; with
# --foreground a signal sent there reaches the script alone, as with kill on the script itself.
start_quickstart() {
  local bin=$1
  shift
  PGFERRY_SKIP_DEPS=1 PGFERRY_BINARY=$bin PGFERRY_QUICKSTART_DIR=$qs \
    PGFERRY_QUICKSTART_PORT=$((20000 + RANDOM % 20000)) timeout --foreground 300 "$repo/scripts/quickstart" "$@" \
    >"$tmp/out" 2>&1 </dev/null &
}
# quickstart ARGS...: runs it with this build's pgferry to its end; its exit code.
quickstart() {
  start_quickstart "$binary" "$@"
  wait "$!"
}
# running PIDFILE: the PID in PIDFILE (first line) is a live process.
running() {
  local pid
  pid=$(head -n 1 "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}
# Every process a run starts, by the PID it recorded (the postmasters' own postmaster.pid).
pidfiles=("$qs/pgferry.pid" "$qs/workload.pid" "$qs/source/postmaster.pid" "$qs/target/postmaster.pid")
# nothing_runs WHAT: none of the recorded processes is alive.
nothing_runs() {
  local f
  for f in "${pidfiles[@]}"; do
    ! running "$f" || fail "$1: $(basename "$(dirname "$f")")/$(basename "$f") names a live process ($(head -n 1 "$f"))"
  done
}
# wait_for_output TEXT SECONDS: until $tmp/out contains TEXT.
wait_for_output() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    grep -qF -- "$1" "$tmp/out" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
show() { echo "--- scripts/quickstart output:"; cat "$tmp/out"; echo "---"; }

# 1. A whole run, then a change by hand, then stop.
quickstart --duration 4 --rate 40
rc=$?
if [ "$rc" -ne 0 ]; then
  fail "a short quickstart run exited $rc, expected 0"
  show
else
  for t in users orders; do
    grep -q "^$t: source and target match" "$tmp/out" || fail "the run did not report $t matching on both sides"
  done
  grep -q "== 8/8 where to look" "$tmp/out" || fail "the run did not tell where to look"
  running "$qs/pgferry.pid" || fail "pgferry run is not running after the quickstart finished"
  src=$(sed -n 's/^Source (psql): *psql -h 127.0.0.1 -p \([0-9]*\) .*/\1/p' "$tmp/out")
  dst=$(sed -n 's/^Target (psql): *psql -h 127.0.0.1 -p \([0-9]*\) .*/\1/p' "$tmp/out")
  if [ -z "$src" ] || [ -z "$dst" ]; then
    fail "the run did not print the source and target ports"
  else
    id=$(psql -X -At -h 127.0.0.1 -p "$src" -U postgres demo \
      -c "UPDATE orders SET amount = 1234.56, updated_at = now() WHERE id = (SELECT min(id) FROM orders) RETURNING id" | head -n 1)
    arrived=0
    for ((i = 0; i < 100; i++)); do
      got=$(psql -X -At -h 127.0.0.1 -p "$dst" -U postgres demo -c "SELECT amount FROM orders WHERE id = ${id:-0}")
      [ "$got" = 1234.56 ] && { arrived=1; break; }
      sleep 0.1
    done
    [ "$arrived" -eq 1 ] || fail "a change made by hand on the source did not reach the target within 10 s"
  fi
  out=$(PGFERRY_QUICKSTART_DIR=$qs "$repo/scripts/quickstart" stop 2>&1 </dev/null)
  rc=$?
  [ "$rc" -eq 0 ] || fail "scripts/quickstart stop exited $rc: $out"
  [[ $out == *"nothing of the quickstart"*"runs any more"* ]] || fail "stop did not say everything stopped: $out"
  nothing_runs "after scripts/quickstart stop"
fi

# 2. SIGTERM while the workload runs: exit 143, everything stopped.
start_quickstart "$binary" --duration 120 --rate 20
pid=$!
if wait_for_output "== 7/8 live workload" 120 && wait_for_output "pgbench -n -f" 10; then
  sleep 1
  kill -TERM "$pid"
  wait "$pid"
  rc=$?
  [ "$rc" -eq 143 ] || { fail "quickstart exited $rc after SIGTERM, expected 143"; show; }
  grep -q "interrupted (SIGTERM): stopping everything this run started" "$tmp/out" \
    || fail "quickstart did not say it stopped what it started after SIGTERM"
  nothing_runs "after SIGTERM"
else
  fail "the interrupted run never reached its workload"
  show
  kill -TERM "$pid" 2>/dev/null
  wait "$pid"
fi

# 3. The replicator dies during the run (a wrapper: every other command passes through): exit 1,
# its log shown, everything stopped.
wrapper=$tmp/pgferry-dies
cat >"$wrapper" <<EOF
#!/bin/sh
case " \$* " in
  *" run --help "*) ;;
  *" run "*) echo "simulated failure of pgferry run" >&2; sleep 1; exit 1 ;;
esac
exec "$binary" "\$@"
EOF
chmod 755 "$wrapper"
start_quickstart "$wrapper" --duration 30
wait "$!"
rc=$?
[ "$rc" -eq 1 ] || { fail "a run whose replicator died exited $rc, expected 1"; show; }
grep -q "simulated failure of pgferry run" "$tmp/out" || fail "the run did not show the end of the replicator's log"
grep -q "stopping everything this run started (the run failed, exit 1)" "$tmp/out" \
  || fail "the failed run did not say it stopped what it started"
nothing_runs "after the replicator died"

# 4. Bad usage.
quickstart --duration 0
rc=$?
[ "$rc" -eq 2 ] || fail "--duration 0 exited $rc, expected 2"
grep -q -- "--duration wants a whole number" "$tmp/out" || fail "--duration 0 was not named: $(cat "$tmp/out")"

[ "$failures" -eq 0 ] && echo "quickstart: all checks passed"
exit $((failures > 0))
