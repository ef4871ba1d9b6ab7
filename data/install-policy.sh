#!/bin/sh
# meson install script: installs the example policy as
# $DESTDIR$SYSCONFDIR/airlock/policy.yaml unless a policy is already there.
# An administrator's policy is never overwritten, not even by an upgrade.
set -eu
src="$1"
dir="${DESTDIR:-}$2"
dest="$dir/policy.yaml"
if [ -e "$dest" ] || [ -L "$dest" ]; then
    echo "airlock: keeping the existing $dest (the new example is $src; compare with 'airlock policy show-default')"
    exit 0
fi
mkdir -p "$dir"
# Written under a temporary name and renamed, so a crash never leaves half a policy.
tmp="$dir/.policy.yaml.new.$$"
install -m 0644 "$src" "$tmp"
mv -n "$tmp" "$dest"
if [ -e "$tmp" ]; then
    rm -f "$tmp"
fi
echo "airlock: installed the example policy at $dest"
