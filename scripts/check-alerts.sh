#!/usr/bin/env bash
# Checks docs/alerts.yml with promtool. Uses promtool from the PATH when there is one;
# otherwise takes it from Debian's prometheus package without installing it (apt-get download
# and dpkg-deb -x into a cache directory), so that no Prometheus server is set up on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
rules=${1:-docs/alerts.yml}
promtool=$(command -v promtool || true)
if [ -z "$promtool" ]; then
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/returnpath/promtool
	promtool=$cache/usr/bin/promtool
	if [ ! -x "$promtool" ]; then
		if ! command -v apt-get >/dev/null; then
			echo "check-alerts: no promtool and no apt-get to fetch it; install Prometheus's promtool" >&2
			exit 1
		fi
		tmp=$(mktemp -d)
		trap 'rm -rf "$tmp"' EXIT
		(cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus >/dev/null; }; })
		mkdir -p "$cache"
		dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
		install -D -m 0755 "$tmp/x/usr/bin/promtool" "$promtool"
	fi
fi
"$promtool" check rules "$rules"
