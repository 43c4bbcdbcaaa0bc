#!/bin/sh
# check.sh DEB VERSION: installs returnpath's Debian package on this machine (as root), checks
# what it put where, the service user, the units (systemd-analyze verify), and purges it again,
# checking that nothing is left. `make deb-check` runs it; CI too.
set -eu
deb=$1 version=$2
units="returnpath.service returnpath-register.service returnpath-renew.service returnpath-renew.timer returnpath-probe.service returnpath-probe.timer"
unitdir=/usr/lib/systemd/system
failed=0

fail() { echo "deb-check: FAIL: $*" >&2; failed=1; }
ok() { echo "deb-check: ok: $*"; }

if [ "$(id -u)" != 0 ]; then
	echo "deb-check: needs root (dpkg -i)" >&2
	exit 1
fi
if dpkg -s returnpath >/dev/null 2>&1; then
	echo "deb-check: returnpath is installed on this machine already; not touching it" >&2
	exit 1
fi
if getent passwd returnpath >/dev/null || [ -e /var/lib/returnpath ] || [ -e /etc/returnpath ]; then
	echo "deb-check: a returnpath user, /var/lib/returnpath or /etc/returnpath exists already; not touching them" >&2
	exit 1
fi
# Purge whatever happens below, so that a failed check leaves the machine as it was.
cleanup() { dpkg --purge returnpath >/dev/null 2>&1 || true; }
trap cleanup EXIT

dpkg -i "$deb" >/dev/null
ok "dpkg -i $deb"

# The files and their modes.
for f in /usr/bin/returnpath /etc/returnpath/returnpath.yaml; do
	[ -f "$f" ] || fail "$f missing"
done
for u in $units; do
	[ -f "$unitdir/$u" ] || fail "$unitdir/$u missing"
done
if grep -qx /etc/returnpath/returnpath.yaml /var/lib/dpkg/info/returnpath.conffiles; then
	ok "returnpath.yaml is a conffile"
else
	fail "/etc/returnpath/returnpath.yaml is not a conffile"
fi
got=$(/usr/bin/returnpath version | head -1)
[ "$got" = "returnpath $version" ] || fail "returnpath version says '$got', want 'returnpath $version'"

# The user: a system account without a login shell; the configuration readable by it alone.
if entry=$(getent passwd returnpath); then
	uid=$(echo "$entry" | cut -d: -f3)
	shell=$(echo "$entry" | cut -d: -f7)
	[ "$uid" -lt 1000 ] || fail "returnpath's uid $uid is not a system uid"
	[ "$shell" = /usr/sbin/nologin ] || fail "returnpath's shell is $shell"
	getent group returnpath >/dev/null || fail "no returnpath group"
	ok "user returnpath (uid $uid)"
else
	fail "no returnpath user"
fi
mode=$(stat -c '%U:%G %a' /etc/returnpath/returnpath.yaml)
[ "$mode" = "root:returnpath 640" ] || fail "/etc/returnpath/returnpath.yaml is $mode, want root:returnpath 640"
runuser -u returnpath -- /usr/bin/returnpath version >/dev/null || fail "the returnpath user cannot run the binary"
# The service reads its configuration as that user.
runuser -u returnpath -- test -r /etc/returnpath/returnpath.yaml || fail "the returnpath user cannot read the configuration"

# An upgrade (here: the same package again) keeps a local edit of the configuration, its mode
# and the user.
echo "# edited by deb-check" >>/etc/returnpath/returnpath.yaml
uid_before=$(id -u returnpath)
dpkg -i "$deb" >/dev/null
grep -q '^# edited by deb-check$' /etc/returnpath/returnpath.yaml || fail "reinstalling replaced the edited configuration"
mode=$(stat -c '%U:%G %a' /etc/returnpath/returnpath.yaml)
[ "$mode" = "root:returnpath 640" ] || fail "after reinstalling, /etc/returnpath/returnpath.yaml is $mode"
[ "$(id -u returnpath)" = "$uid_before" ] || fail "reinstalling changed returnpath's uid"
ok "reinstall keeps the edited configuration, its mode and the user"

# The units, as systemd reads them (ExecStart binaries exist, directives known, User= exists).
if command -v systemd-analyze >/dev/null; then
	# verify exits 0 on an unknown directive ("Unknown key ..., ignoring"): any word from it
	# is a failure.
	# shellcheck disable=SC2086 # one argument per unit
	if out=$(cd $unitdir && systemd-analyze verify --man=no $units 2>&1) && [ -z "$out" ]; then
		ok "systemd-analyze verify $units"
	else
		echo "$out" >&2
		fail "systemd-analyze verify"
	fi
	exposure=$(systemd-analyze security --offline=yes --no-pager $unitdir/returnpath.service 2>/dev/null | tail -1 || true)
	[ -n "$exposure" ] && echo "deb-check: returnpath.service $exposure"
else
	fail "systemd-analyze missing (apt-get install systemd)"
fi

# What the service would leave: its state directory (systemd makes it on start, which cannot
# happen here) and an enabled unit, so that the purge is checked against both.
install -d -o returnpath -g returnpath -m 0750 /var/lib/returnpath
touch /var/lib/returnpath/known_hosts
mkdir -p /etc/systemd/system/multi-user.target.wants
ln -sf $unitdir/returnpath.service /etc/systemd/system/multi-user.target.wants/returnpath.service

trap - EXIT
dpkg --purge returnpath >/dev/null
ok "dpkg --purge returnpath"
dpkg -s returnpath >/dev/null 2>&1 && fail "dpkg still knows returnpath after purge"
for f in /usr/bin/returnpath /etc/returnpath /var/lib/returnpath /usr/share/doc/returnpath \
	/etc/systemd/system/multi-user.target.wants/returnpath.service; do
	[ -e "$f" ] || [ -L "$f" ] && fail "$f left behind by purge"
done
for u in $units; do
	[ -e "$unitdir/$u" ] && fail "$unitdir/$u left behind by purge"
done
getent passwd returnpath >/dev/null && fail "user returnpath left behind by purge"
getent group returnpath >/dev/null && fail "group returnpath left behind by purge"
dpkg-statoverride --list /etc/returnpath/returnpath.yaml >/dev/null && fail "a statoverride left behind by purge"

if [ "$failed" != 0 ]; then
	echo "deb-check: FAILED" >&2
	exit 1
fi
echo "deb-check: passed"
