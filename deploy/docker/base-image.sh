#!/usr/bin/env bash
# Make the image's base without a container registry: a Debian bookworm root filesystem from
# Debian's own packages (debootstrap), with Debian's python3.11 and python3-venv, imported into
# docker as churn-base:<hash of this script>. The same hash is a cache key: when the tag exists
# the base is not built again. Prints the tag on stdout (progress goes to stderr).
#
# The Debian mirror is read at run time from this machine's apt sources (deb822 .sources files
# or the one-line sources.list format), so no host is written into the repository. Set
# DEBIAN_MIRROR to override it.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
hash="$(sha256sum "$here/base-image.sh" | cut -c1-12)"
tag="${CHURN_BASE_REPO:-churn-base}:$hash"
say() { printf '[base] %s\n' "$*" >&2; }

if docker image inspect "$tag" >/dev/null 2>&1; then
  say "cached $tag"
  echo "$tag"
  exit 0
fi

apt_mirror() {
  local f uri
  # deb822: the first URIs: line of a .sources file that serves bookworm's main suite.
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri="$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ && u {print u; exit}' "$f")"
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  # One-line format: deb [options] URI bookworm main
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri="$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($(i+1) == "bookworm") { print $i; exit } } }' "$f")"
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
}

mirror="${DEBIAN_MIRROR:-$(apt_mirror)}"
[ -n "$mirror" ] || { say "no bookworm mirror in /etc/apt/sources.list(.d); set DEBIAN_MIRROR"; exit 1; }
command -v debootstrap >/dev/null || { say "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }

root="$(mktemp -d /var/tmp/churn-base.XXXXXX)"
trap 'rm -rf "$root"' EXIT
say "debootstrap bookworm from $mirror into $root"
started=$SECONDS
# minbase: dpkg, apt and the essential set (passwd for useradd is essential). ca-certificates
# for TLS; python3.11 and python3-venv (ensurepip) for the virtualenv the Dockerfile builds;
# postgresql-client for `manage.py backup`/`restore` (pg_dump, pg_restore).
debootstrap --variant=minbase --include=ca-certificates,python3.11,python3-venv,postgresql-client \
  bookworm "$root" "$mirror" >&2
# Nothing in the image needs apt's lists, caches, docs or man pages.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/var/log/*
tar -C "$root" --numeric-owner -c . | docker import \
  --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$tag" >&2
say "built $tag in $((SECONDS - started))s"
echo "$tag"
