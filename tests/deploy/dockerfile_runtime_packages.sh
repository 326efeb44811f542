#!/usr/bin/env bash
# Every shared library the pgferry binary needs comes from a package the Dockerfile's runtime
# stage installs. The image cannot be built on the CI machines (no Docker engine); this is the
# check that keeps its package list honest. Usage: dockerfile_runtime_packages.sh BINARY DOCKERFILE
set -eu
binary=$1
dockerfile=$2
missing=0
while read -r lib; do
  path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64|x86_64|64bit/ {print $NF; exit}')
  [ -n "$path" ] || path=$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')
  pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -1 | cut -d: -f1) || true
  [ -n "$pkg" ] || pkg=$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1) || true
  case "$pkg" in
    libc6 | libgcc-s1 | "") continue ;;  # in the base image
  esac
  if ! sed 's/[[:space:]\\]*$//; s/^[[:space:]]*//' "$dockerfile" | grep -Fxq "$pkg"; then
    echo "the binary needs $lib (package $pkg), which the Dockerfile's runtime stage does not install" >&2
    echo "  fix: add '$pkg' to the apt-get install list of the runtime stage in $dockerfile" >&2
    missing=1
  fi
done < <(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
exit $missing
