#!/usr/bin/env bash
# scripts/build-release.sh COMMIT [DIR]: builds an earlier release of weir from the git
# history (the upgrade and rollback tests run it next to this one). `git archive` of COMMIT
# into DIR (default build/releases/<full commit>), node_modules linked from this tree, then
# `make build` there. Reused when DIR already holds a finished build (a stamp file says so).
# Prints DIR on stdout.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
commit=$(git -C "$here" rev-parse --verify "${1:?usage: build-release.sh COMMIT [DIR]}^{commit}")
dir=${2:-$here/build/releases/$commit}
stamp=$dir/.weir-release-built
if [[ -f $stamp ]]; then echo "$dir"; exit 0; fi
rm -rf "$dir.tmp"
mkdir -p "$dir.tmp"
git -C "$here" archive --format=tar "$commit" | tar -x -C "$dir.tmp"
ln -s "$(readlink -f "$here/node_modules")" "$dir.tmp/node_modules"
# -o: never remake the node_modules stamp: its rule is `npm ci`, which would wipe the
# node_modules this tree shares through the symlink
make -C "$dir.tmp" -o node_modules/.package-lock.json build >"$dir.tmp/build.log" 2>&1 || { echo "build of $commit failed, see $dir.tmp/build.log" >&2; exit 1; }
rm -rf "$dir"
mv "$dir.tmp" "$dir"
touch "$stamp"
echo "$dir"
