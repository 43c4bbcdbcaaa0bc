#!/bin/sh
# Fetches axe-core (the accessibility checker the review desk's browser tests inject) from the
# npm registry into build/axe/, for tests only: nothing of it is committed or shipped. The
# version is pinned and the file checked against the checksum committed beside this script.
# make deps runs it; the browser tests skip without it (and fail under RETURNPATH_REQUIRE_LAB=1).
set -eu
cd "$(dirname "$0")/.."
version=4.14.1
dir=build/axe
want=$(cat scripts/axe.sha256)
if [ -f "$dir/axe.min.js" ] && echo "$want  $dir/axe.min.js" | sha256sum -c --status; then
	exit 0
fi
if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	# A fresh Debian or Ubuntu machine: Debian's npm (only when no npm is on the PATH at all).
	echo "installing: npm"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
if ! command -v npm >/dev/null 2>&1; then
	echo "npm is missing: the review desk's accessibility tests will skip" >&2
	exit 0
fi
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "axe-core@$version" >/dev/null)
tar -xzf "$tmp/axe-core-$version.tgz" -C "$tmp" package/axe.min.js
if ! echo "$want  $tmp/package/axe.min.js" | sha256sum -c --status; then
	echo "axe-core $version: axe.min.js does not match scripts/axe.sha256" >&2
	exit 1
fi
mv "$tmp/package/axe.min.js" "$dir/axe.min.js"
echo "axe-core $version in $dir/axe.min.js"
