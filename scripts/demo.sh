#!/usr/bin/env bash
# make demo: the whole returnpath story on real FRR and a real Linux firewall, in network
# namespaces on this machine. It never touches the root namespace and cleans up after itself.
set -euo pipefail

BIN=$(readlink -f "${1:-bin/returnpath}")
if [ "$(uname -s)" != Linux ]; then
	echo "make demo needs Linux: it builds its lab from network namespaces. On macOS or Windows, run it in a Linux VM." >&2
	exit 1
fi
if [ "$(id -u)" != 0 ]; then
	echo "make demo needs root: it creates network namespaces, starts FRR and sshd inside them and adds two lab users." >&2
	echo "Run: sudo make demo" >&2
	exit 1
fi
"$BIN" lab down --dir /nonexistent >/dev/null 2>&1 || true

if [ -t 1 ]; then B=$'\e[1m'; G=$'\e[32m'; R=$'\e[31m'; D=$'\e[2m'; N=$'\e[0m'; else B= G= R= D= N=; fi
step=0
say() { step=$((step + 1)); printf '\n%s== %d. %s%s\n' "$B" "$step" "$1" "$N"; shift; for l in "$@"; do printf '   %s\n' "$l"; done; }
ok() { printf '   %s%s%s\n' "$G" "$*" "$N"; }
bad() { printf '   %s%s%s\n' "$R" "$*" "$N"; }
run() { printf '   %s$ %s%s\n' "$D" "$*" "$N"; "$@"; }
# count 1 route -> "1 route", 2 -> "2 routes"
count() { if [ "$1" = 1 ]; then printf '1 %s' "$2"; else printf '%s %ss' "$1" "$2"; fi; }
# ops shows the ops of a change as changes show prints them, without its header and events.
ops() { sed -n '/ops\{0,1\}, in the order/,/^events:/p' | sed '/^events:/d' | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}'; }

WORK=$(mktemp -d /tmp/returnpath-demo.XXXXXX)
chmod 755 "$WORK"
LAB="$WORK/lab"
SERVE_PID=
cleanup() {
	set +e
	[ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
	"$BIN" lab down --dir "$LAB" >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT

say "Build the lab" \
	"An FRR switch (sw1) and a Linux firewall with hide NAT (fw1), both driven over SSH with strict" \
	"host keys; a docker host with a container behind docker0 and no masquerade; an 'internet' host" \
	"198.51.100.1 behind the firewall. Everything lives in network namespaces; a throwaway" \
	"PostgreSQL holds the registry."
run "$BIN" lab up --dir "$LAB"
eval "$("$BIN" lab env --dir "$LAB")"
"$BIN" lab status --dir "$LAB" | grep -A1 '^  postgres' | sed 's/^/ /'
SERVER="http://$LAB_SERVICE:8080"
in_mgmt() { ip netns exec "$LAB_MGMT" "$@"; }

say "Start returnpath inside the management namespace"
ip netns exec "$LAB_MGMT" "$BIN" serve --config "$LAB_CONFIG" >"$WORK/serve.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 100); do in_mgmt curl -sf "$SERVER/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
in_mgmt curl -sf "$SERVER/readyz" >/dev/null || { bad "the service did not become ready:"; tail -20 "$WORK/serve.log"; exit 1; }
ok "ready at $SERVER"
for t in "docker-01:bootstrap" "alice:reviewer" "oncall:reviewer" "ci:viewer"; do
	"$BIN" token create --config "$LAB_CONFIG" --name "${t%%:*}" --role "${t##*:}" --owner "${t%%:*}" | tail -1 >"$WORK/${t%%:*}.token"
done
ok "tokens: docker-01 (bootstrap), alice and oncall (reviewers), ci (viewer)"
as() { local who=$1; shift; RETURNPATH_TOKEN=$(cat "$WORK/$who.token") in_mgmt "$BIN" "$@" --server "$SERVER"; }

say "The problem: the container's packets leave with its own address" \
	"This docker host will run dockerd with --ip-masq=false: no NAT on the host, so the container's" \
	"packets reach the internet with its own address, and nobody upstream knows the way back."
printf '{\n  "log-driver": "journald"\n}\n' >"$WORK/daemon.json"

say "Host bootstrap registers the host, before dockerd starts" \
	"This runs in the docker host's namespace, as a systemd unit ordered before docker.service would." \
	"The demo asks for no particular subnet: the service allocates the next free one of the pool," \
	"writes it into daemon.json as bip, and files a change of the return routes for review."
ip netns exec "$LAB_HOST1" "$BIN" host register --server "$SERVER" --token-file "$WORK/docker-01.token" \
	--name docker-01 --address "$LAB_HOST1_UPLINK" --daemon-json "$WORK/daemon.json" | sed 's/^/   /'
printf '   daemon.json now: %s\n' "$(tr -d '\n ' <"$WORK/daemon.json")"
SUBNET=$(in_mgmt curl -sf -H "Authorization: Bearer $(cat "$WORK/ci.token")" "$SERVER/v1/hosts/docker-01" | jq -r .subnet)

say "dockerd starts with that bip" \
	"The lab's stand-in for dockerd addresses docker0 and a container from daemon.json. The routes" \
	"are not approved yet, so the container's ping still gets no reply."
"$BIN" lab dockerd --dir "$LAB" --host host1 --daemon-json "$WORK/daemon.json" | sed 's/^/   /'
if ip netns exec "$LAB_HOST1_CTR" ping -c 2 -W 1 "$LAB_INTERNET" >/dev/null 2>&1; then
	bad "the ping worked before any route: the lab is wrong"; exit 1
fi
bad "ping from the container to $LAB_INTERNET: no reply (the reply dies at the firewall)"
probe() { ip netns exec "$LAB_HOST1" "$BIN" host probe --server "$SERVER" --token-file "$WORK/docker-01.token" --name docker-01 --target "$LAB_INTERNET" --timeout 1s "$@"; }
set +e; probe | sed 's/^/   /'; rc=${PIPESTATUS[0]}; set -e
[ "$rc" = 1 ] && bad "the host's own probe from docker0 fails too (exit 1), and the service recorded it" || { bad "host probe exited $rc, expected 1"; exit 1; }

say "A network engineer reviews the change" "These are the exact lines each device will get, in apply order."
ID=$(as alice changes list --status pending --output json | jq -r '.[0].id')
as alice changes show "$ID"

say "Approve it (four eyes: the requester could not)" \
	"Quoting the plan hash approves exactly the plan shown above, not whatever the plan is by now."
HASH=$(as alice changes show "$ID" --output json | jq -r .plan_hash)
as alice changes approve "$ID" --plan-hash "$HASH" | sed -n 1p | sed 's/^/   /'
in_mgmt curl -sS --fail-with-body -H "Authorization: Bearer $(cat "$WORK/ci.token")" "$SERVER/v1/hosts/docker-01?wait=active&timeout=30s" | jq -r '"   host \(.name) is \(.state); change #\(.change.id) \(.change.status)"'
printf '   sw1: %s\n' "$(ip netns exec "$LAB_SW1" ip route show "$SUBNET")"
printf '   fw1: %s\n' "$(ip netns exec "$LAB_FW1" ip route show "$SUBNET")"

say "The return path works, and the container keeps its own address"
ip netns exec "$LAB_HOST1" timeout 5 tcpdump -lni uplink -c 1 icmp 2>/dev/null >"$WORK/capture.txt" &
CAP=$!
sleep 0.5
if ip netns exec "$LAB_HOST1_CTR" ping -c 3 -W 1 "$LAB_INTERNET" >/dev/null; then ok "ping from the container to $LAB_INTERNET: replies"; else bad "ping still fails"; exit 1; fi
wait $CAP || true
printf '   on the docker host uplink: %s\n' "$(head -1 "$WORK/capture.txt" | sed 's/.*IP //')"

say "The host proves its return path itself" \
	"host probe sends echo requests from docker0's gateway address, so replies can only come back over" \
	"the return routes, and reports the result: a systemd timer would re-run it every few minutes."
probe | sed 's/^/   /'

say "CI verifies the fabric" "Exit 0: every device holds exactly the routes the registry says, and" \
	"(--probes) every active host's last probe came back within probes.max_age."
as ci verify --probes && ok "in sync (exit 0)"

say "Someone deletes the firewall's route by hand" \
	"CI's next run finds it. (Verify shares a device reading for up to verify.max_age, 5 s, so that no" \
	"caller can make the service log in to a device per request: the demo waits that long.)"
run ip netns exec "$LAB_FW1" ip route del "$SUBNET"
sleep 5.2
set +e; as ci verify; rc=$?; set -e
[ $rc = 1 ] && bad "drift found (exit 1)" || { bad "verify exited $rc, expected 1"; exit 1; }

say "Remediation: on call files a change that restores intent; alice reviews it like any other"
as oncall remediate | sed 's/^/   /'
RID=$(as alice changes list --status pending --output json | jq -r '.[0].id')
as alice changes show "$RID" | ops
as alice changes approve "$RID" --plan-hash "$(as alice changes show "$RID" --output json | jq -r .plan_hash)" | sed -n 1p | sed 's/^/   /'
for _ in $(seq 100); do [ "$(as alice changes show "$RID" --output json | jq -r .status)" = applied ] && break; sleep 0.1; done
as ci verify && ok "in sync again (exit 0)"

say "Decommission: the host deregisters, the routes go, the subnet is free again"
ip netns exec "$LAB_HOST1" "$BIN" host deregister --server "$SERVER" --token-file "$WORK/docker-01.token" --name docker-01 | sed 's/^/   /'
DID=$(as alice changes list --status pending --output json | jq -r '.[0].id')
as alice changes show "$DID" | ops
as alice changes approve "$DID" --plan-hash "$(as alice changes show "$DID" --output json | jq -r .plan_hash)" | sed -n 1p | sed 's/^/   /'
for _ in $(seq 100); do [ "$(as alice changes show "$DID" --output json | jq -r .status)" = applied ] && break; sleep 0.1; done
printf '   sw1: %s   fw1: %s\n' "$(count "$(ip netns exec "$LAB_SW1" ip route show "$SUBNET" | wc -l)" route)" "$(count "$(ip netns exec "$LAB_FW1" ip route show "$SUBNET" | wc -l)" route)"
if ip netns exec "$LAB_HOST1_CTR" ping -c 1 -W 1 "$LAB_INTERNET" >/dev/null 2>&1; then bad "ping still works"; exit 1; fi
ok "ping fails again; $(in_mgmt curl -sf -H "Authorization: Bearer $(cat "$WORK/ci.token")" "$SERVER/v1/pools" | jq -r '.items[0] | "pool \(.name): \(.allocated) of \(.size) subnets allocated"')"

say "Clean up" "Lab down: the namespaces, daemons, the throwaway database and the lab directory go; so do the" \
	"lab users and their sudoers drop-in, unless another lab is still up. The root namespace was never touched."
