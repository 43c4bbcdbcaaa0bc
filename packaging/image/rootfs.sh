#!/bin/sh
# rootfs.sh BINARY CA_BUNDLE ZONEINFO_DIR OUT: lays out the files of returnpath's image in the
# directory OUT and packs them into OUT.tar, the one place that says what the image holds. The Dockerfile's source stage runs it inside
# the Go image; `make image` runs it on this machine (Debian's CA bundle and tzdata) because no
# base image can be pulled here.
set -eu
bin=$1 ca=$2 zoneinfo=$3 out=$4
# The service's user: numeric so that runtimes (Kubernetes' runAsNonRoot) can tell it is not
# root without reading /etc/passwd. The same ids are in the Dockerfile's USER.
uid=10001 gid=10001

rm -rf "$out"
mkdir -p "$out/usr/bin" "$out/etc/ssl/certs" "$out/usr/share" "$out/etc/returnpath" "$out/var/lib/returnpath" "$out/tmp"
install -m 0755 "$bin" "$out/usr/bin/returnpath"
install -m 0644 "$ca" "$out/etc/ssl/certs/ca-certificates.crt"
# Go reads /usr/share/zoneinfo; right/ and posix/ are copies with leap seconds or aliases that
# Go does not need.
cp -R "$zoneinfo" "$out/usr/share/zoneinfo"
rm -rf "$out/usr/share/zoneinfo/right" "$out/usr/share/zoneinfo/posix"
cat >"$out/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/sbin/nologin
returnpath:x:$uid:$gid:returnpath:/var/lib/returnpath:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat >"$out/etc/group" <<GROUP
root:x:0:
returnpath:x:$gid:
nogroup:x:65534:
GROUP
# Go's resolver reads these; without them "localhost" does not resolve in a scratch image.
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$out/etc/hosts"
printf 'hosts: files dns\n' >"$out/etc/nsswitch.conf"
chmod 0644 "$out/etc/passwd" "$out/etc/group" "$out/etc/hosts" "$out/etc/nsswitch.conf"
chmod 1777 "$out/tmp"
chmod 0750 "$out/var/lib/returnpath"

# The archive carries the ownership: root for everything but /var/lib/returnpath, the working
# directory, which the user writes (known_hosts for host_key: accept-new; a volume in compose
# starts with its owner). A Dockerfile cannot chown in a scratch stage, but ADD keeps the owners
# a tar records, and tar records these without running as root. Sorted names and one mtime
# make the archive, and so the layer, the same for the same inputs.
mtime=@${SOURCE_DATE_EPOCH:-0}
tar -C "$out" --sort=name --mtime="$mtime" --numeric-owner --owner=0 --group=0 \
	--exclude=./var/lib/returnpath -cf "$out.tar" .
tar -C "$out" --sort=name --mtime="$mtime" --numeric-owner --owner=$uid --group=$gid \
	--no-recursion -rf "$out.tar" ./var/lib/returnpath
