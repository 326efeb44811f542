#!/usr/bin/env bash
# The benchmarks' shell plumbing: bench/lib.sh's setting_line (a --setting argument as a
# postgresql.conf line, bad ones refused with exit 2) and fd_open, and a benchmark that fails
# while starting its clusters still removes its work directory: its EXIT trap runs inside
# cluster_start's redirection, which closed the descriptor the trap restores stderr from, and an
# `exec 2>&FD` there used to end the script before it cleaned up.
# Usage: bench_cleanup.sh REPO PGFERRY_BINARY
set -u
repo=$1 binary=$2
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# shellcheck source=bench/lib.sh
. "$repo/bench/lib.sh"

expect_line() {  # ARG EXPECTED
  local got
  got=$(setting_line "$1" 2>&1) || { fail "setting_line '$1' exited $? ($got)"; return; }
  [ "$got" = "$2" ] || fail "setting_line '$1' gave \"$got\", expected \"$2\""
}
expect_line "synchronous_commit = off" "synchronous_commit = 'off'"
expect_line "shared_buffers='1GB'" "shared_buffers = '1GB'"
expect_line "search_path=a'b" "search_path = 'a''b'"
expect_line "auto_explain.log_min_duration=1s" "auto_explain.log_min_duration = '1s'"
for bad in "nope" "x=" "=1" "a b=1"; do
  out=$( (setting_line "$bad") 2>&1); rc=$?
  [ "$rc" -eq 2 ] || fail "setting_line '$bad' exited $rc, expected 2"
  [[ $out == *"got '$bad'"* ]] || fail "setting_line '$bad' did not name the argument: $out"
done

exec {probe}>&2
fd_open "$probe" || fail "fd_open: an open descriptor reported closed"
closed_inside() { ! fd_open "$probe"; }
closed_inside {probe}>&- || fail "fd_open: a descriptor closed by the caller's redirection reported open"

# A benchmark whose source cluster cannot start: exit 1, the reason shown, nothing left behind.
tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
out=$(TMPDIR=$tmp PGFERRY_BINARY=$binary timeout 120 "$repo/bench/e2e" --quick --setting pgferry_no_such_parameter=1 \
      --out "$tmp/out" 2>&1 </dev/null)
rc=$?
[ "$rc" -eq 1 ] || fail "bench/e2e with a bad setting exited $rc, expected 1"
[[ $out == *pgferry_no_such_parameter* ]] || fail "bench/e2e did not show the server's complaint about the setting: $out"
[[ $out != *"Bad file descriptor"* ]] || fail "bench/e2e's cleanup could not restore its stderr: $out"
left=$(find "$tmp" -maxdepth 1 -name 'pgferry-bench-*')
[ -z "$left" ] || fail "bench/e2e left its work directory behind: $left"

[ "$failures" -eq 0 ] && echo "bench plumbing: all checks passed"
exit $((failures > 0))
