#!/bin/sh
# check.sh IMAGE VERSION: checks the image `make image` built, without running a container
# (podman builds images on this machine but cannot run them): its configuration (user, entrypoint,
# healthcheck, labels, port), its files, and the binary taken out of it, whose `version` must
# say VERSION. `make image-check` runs it; CI too.
set -eu
image=$1 version=$2
failed=0
fail() { echo "image-check: FAIL: $*" >&2; failed=1; }
ok() { echo "image-check: ok: $*"; }

# want FIELD VALUE: the image's configuration field, as podman's Go template renders it.
want() {
	got=$(podman image inspect --format "$1" "$image")
	if [ "$got" = "$2" ]; then ok "$1 = $2"; else fail "$1 = '$got', want '$2'"; fi
}
want '{{.Config.User}}' '10001:10001'
want '{{json .Config.Entrypoint}}' '["/usr/bin/returnpath"]'
want '{{json .Config.Cmd}}' '["serve"]'
want '{{json .Config.ExposedPorts}}' '{"8080/tcp":{}}'
want '{{.Config.WorkingDir}}' '/var/lib/returnpath'
want '{{json .HealthCheck.Test}}' '["CMD","/usr/bin/returnpath","healthcheck"]'
want '{{index .Config.Labels "org.opencontainers.image.version"}}' "$version"
want '{{index .Config.Labels "org.opencontainers.image.title"}}' 'returnpath'
want '{{index .Config.Labels "org.opencontainers.image.source"}}' 'https://github.com/returnpath/returnpath'
for l in org.opencontainers.image.revision org.opencontainers.image.created org.opencontainers.image.description; do
	v=$(podman image inspect --format "{{index .Config.Labels \"$l\"}}" "$image")
	case "$v" in "" | unknown | "<no value>") fail "label $l is '$v'" ;; *) ok "label $l = $v" ;; esac
done

# The files: `podman save` writes the layers as tar archives; list them all.
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
podman save -q --format docker-archive -o "$dir/image.tar" "$image" >/dev/null
mkdir "$dir/img" "$dir/root"
tar -C "$dir/img" -xf "$dir/image.tar"
for layer in $(jq -r '.[0].Layers[]' "$dir/img/manifest.json"); do
	tar -C "$dir/root" --numeric-owner -xpf "$dir/img/$layer"
done
for f in usr/bin/returnpath etc/ssl/certs/ca-certificates.crt usr/share/zoneinfo/UTC usr/share/zoneinfo/Europe/Berlin etc/passwd etc/group etc/hosts; do
	if [ -f "$dir/root/$f" ]; then ok "/$f"; else fail "/$f missing"; fi
done
grep -q '^returnpath:x:10001:10001:' "$dir/root/etc/passwd" || fail "/etc/passwd has no returnpath user 10001"
owner=$(stat -c '%u:%g' "$dir/root/var/lib/returnpath")
[ "$owner" = 10001:10001 ] || fail "/var/lib/returnpath is owned by $owner, want 10001:10001"
[ -x "$dir/root/bin/sh" ] && fail "the image has a shell"
grep -q 'BEGIN CERTIFICATE' "$dir/root/etc/ssl/certs/ca-certificates.crt" || fail "the CA bundle holds no certificate"

# The binary out of the image: static (it must run on scratch) and the version asked for.
got=$("$dir/root/usr/bin/returnpath" version | head -1)
if [ "$got" = "returnpath $version" ]; then ok "returnpath version: $got"; else fail "returnpath version says '$got', want 'returnpath $version'"; fi
if command -v ldd >/dev/null && ldd "$dir/root/usr/bin/returnpath" 2>&1 | grep -q '=>'; then
	fail "the binary is dynamically linked"
fi
# Go finds its zone files where the image keeps them.
ZONEINFO="$dir/root/usr/share/zoneinfo" TZ=Europe/Berlin "$dir/root/usr/bin/returnpath" version >/dev/null || fail "the binary fails with the image's tzdata"

if [ "$failed" != 0 ]; then
	echo "image-check: FAILED" >&2
	exit 1
fi
echo "image-check: passed"
