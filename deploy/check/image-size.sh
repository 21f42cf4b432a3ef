#!/usr/bin/env bash
# Measures, without a Docker engine, how big the runtime stage of the
# Dockerfile is (uncompressed, as `docker images` reports it).
#
#   deploy/check/image-size.sh [--serve BIN] [--client BIN] [--cache DIR]
#                              [--limit MB] [--measure-base]
#
# Needs apt's package lists (apt-get update) and Debian's mirror; nothing else.
# Method:
#  1. The package set of debian:12-slim is derived, not written down: debuerreotype
#     builds it with `debootstrap --variant=minbase`, i.e. every package of
#     Priority: required, plus usr-is-merged (debootstrap merges /usr itself and
#     installs usr-is-merged, so the `usrmerge | usr-is-merged` alternative never
#     pulls usrmerge and perl), plus their Depends/Pre-Depends. apt resolves that
#     closure against an empty dpkg status file (`apt-get -s`, no chroot). On
#     2026-11-29 this gave exactly the 88 packages of the published
#     bookworm/slim/rootfs.manifest of debuerreotype/docker-debian-artifacts.
#  2. A dpkg status file holding that set ("install ok installed") stands in for
#     the slim image's /var/lib/dpkg/status, and
#     `apt-get -s install --no-install-recommends <runtime group>` against it
#     lists the packages the runtime stage's `deploy/install-deps.sh runtime`
#     adds on top of debian:12-slim, with their versions.
#  3. Those .debs are fetched (`apt-get download`, kept in DIR/debs for the next
#     run) and each is unpacked (`dpkg-deb -x`) into its own staging root; then
#     what the slim image's /etc/dpkg/dpkg.cfg.d/docker path-exclude rules keep
#     dpkg from installing is deleted (debuerreotype's .slimify-excludes, minus
#     .slimify-includes: /usr/share/doc/* but */copyright, /usr/share/man/*,
#     /usr/share/info/*, /usr/share/groff/*, /usr/share/linda/*,
#     /usr/share/lintian/overrides/*, /usr/share/locale/* but locale.alias),
#     and what the Dockerfile's runtime stage adds to them (its quoted
#     '/usr/...' patterns, written to /etc/dpkg/dpkg.cfg.d/ before the install).
#  4. Sizes are counted the way Docker counts a layer (moby's directory.Size):
#     the byte size of every non-directory, a hard-linked file once.
#     Added to the packages: dpkg's database entries for them (info/*.list, the
#     control members dpkg keeps, the status stanza), the CA bundle and links
#     update-ca-certificates writes, the stripped selu-serve and selu-client
#     (the Dockerfile strips them), models/digits_snn, and 1 MB for the rest a
#     layer carries that cannot be measured here (copied-up status-old,
#     debconf cache, ld.so.cache, apt/dpkg logs, passwd/group of useradd).
#  5. debian:12-slim itself: 74.83 MB for amd64 (docker-library/repo-info,
#     repos/debian/local/bookworm-slim.md, "Virtual Size", image of
#     2026-09-18). --measure-base measures it too, the same way (downloads the
#     88 base packages, about 30 MB), as a check of this method.
# Exits 1 when the total is over --limit (default 150 MB; 1 MB = 10^6 bytes,
# as Docker prints them).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"

SERVE="$ROOT/build/release/server/selu-serve"
CLIENT="$ROOT/build/release/client/selu-client"
CACHE="$ROOT/build/image-size"
LIMIT_MB=150
MEASURE_BASE=0
PRIVATE_LISTS=0
ARGS=("$@")
BASE_PUBLISHED=74830000   # bytes; see 5. above
MISC_ALLOWANCE=1000000
while [[ $# -gt 0 ]]; do
  case "$1" in
    --serve) SERVE="$2"; shift 2 ;;
    --client) CLIENT="$2"; shift 2 ;;
    --cache) CACHE="$2"; shift 2 ;;
    --limit) LIMIT_MB="$2"; shift 2 ;;
    --measure-base) MEASURE_BASE=1; shift ;;
    --private-lists) PRIVATE_LISTS=1; shift ;;
    *) echo "image-size.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
for c in apt-get apt-cache dpkg-deb strip awk; do
  command -v "$c" >/dev/null || { echo "image-size.sh: '$c' not found" >&2; exit 2; }
done
[[ -f "$SERVE" && -f "$CLIENT" ]] || { echo "image-size.sh: build selu-serve and selu-client first ($SERVE, $CLIENT)" >&2; exit 2; }

# shellcheck disable=SC1090
source <(sed -n '/^RUNTIME_PKGS=(/,/^)/p' deploy/install-deps.sh)

mkdir -p "$CACHE/debs"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
APT=(-o Debug::NoLocking=1 -o APT::Sandbox::User=root -qq)
# apt's package lists: the system's when it has them (apt-get update was run),
# else (the Dockerfile's build stage deletes them after installing), or when a
# download with them failed (a list older than the mirror), a private copy in
# DIR/lists, updated here.
if [[ $PRIVATE_LISTS == 1 ]] || ! ls /var/lib/apt/lists/*_dists_bookworm_main_binary-*_Packages* >/dev/null 2>&1; then
  PRIVATE_LISTS=1
  mkdir -p "$CACHE/lists/partial"
  APT+=(-o Dir::State::Lists="$CACHE/lists" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=)
  apt-get "${APT[@]}" update
fi

mb() { awk -v b="$1" 'BEGIN {printf "%.2f", b / 1e6}'; }
# Bytes a layer holding the tree DIR takes, as Docker counts it.
tree_bytes() {
  find "$1" ! -type d -printf '%i %s\n' | sort -u -k1,1 | awk '{s += $2} END {print s + 0}'
}
# "Inst" lines of a simulated install -> "name version".
sim_install() {  # STATUS-FILE PKG...
  local status="$1"; shift
  apt-get "${APT[@]}" -s -o Dir::State::status="$status" install --no-install-recommends "$@" |
    awk '/^Inst / {v = $3; if (v ~ /^\[/) v = $4; gsub(/[()]/, "", v); print $2, v}'
}
# The cached .deb of NAME VERSION (apt-get download's file name: NAME_VERSION_ARCH.deb,
# the epoch's colon as %3a).
deb_of() {
  local f
  for f in "$CACHE/debs/${1}_${2//:/%3a}_"*.deb; do
    [[ -e "$f" ]] && { echo "$f"; return 0; }
  done
  return 1
}
# Fetch the .debs of a file of "name version" lines into the cache, once.
fetch() {
  local want=() name ver
  while read -r name ver; do
    deb_of "$name" "$ver" >/dev/null || want+=("$name=$ver")
  done <"$1"
  if [[ ${#want[@]} -gt 0 ]] && ! (cd "$CACHE/debs" && apt-get "${APT[@]}" download "${want[@]}"); then
    if [[ $PRIVATE_LISTS == 0 ]]; then
      echo "image-size.sh: download failed; again with freshly updated package lists" >&2
      rm -rf "$work"
      exec "$0" "${ARGS[@]}" --private-lists
    fi
    echo "image-size.sh: apt-get download failed" >&2
    exit 2
  fi
}
# dpkg path-exclude / path-include rules: debian:12-slim's own
# (/etc/dpkg/dpkg.cfg.d/docker), then the Dockerfile's runtime stage's
# ('/usr/...' patterns it writes to /etc/dpkg/dpkg.cfg.d/ before installing).
# As in dpkg, * matches / too, and an include wins over an exclude.
EXCLUDES=(/usr/share/doc/'*' /usr/share/groff/'*' /usr/share/info/'*' /usr/share/linda/'*'
  /usr/share/lintian/overrides/'*' /usr/share/locale/'*' /usr/share/man/'*')
INCLUDES=(/usr/share/doc/'*'/copyright /usr/share/locale/locale.alias)
mapfile -t DOCKERFILE_EXCLUDES < <(grep -o "'/usr/[^']*'" Dockerfile | tr -d "'")
EXCLUDES+=("${DOCKERFILE_EXCLUDES[@]}")
excluded() {  # PATH (as installed)
  local p
  # shellcheck disable=SC2053  # the patterns are globs
  for p in "${INCLUDES[@]}"; do [[ "$1" == $p ]] && return 1; done
  # shellcheck disable=SC2053
  for p in "${EXCLUDES[@]}"; do [[ "$1" == $p ]] && return 0; done
  return 1
}
# Unpack one package as slim's dpkg would install it; print the bytes of its
# files, of its /var/lib/dpkg/info entries and of its status stanza.
staged_bytes() {  # name version
  local deb root ctrl files info f
  deb="$(deb_of "$1" "$2")"
  root="$work/stage/$1"
  ctrl="$work/ctrl/$1"
  mkdir -p "$root" "$ctrl"
  dpkg-deb -x "$deb" "$root"
  dpkg-deb -e "$deb" "$ctrl"
  while IFS= read -r -d '' f; do
    if excluded "${f#"$root"}"; then rm -f "$f"; fi
  done < <(find "$root" ! -type d -print0)
  files="$(tree_bytes "$root")"
  # dpkg keeps every control member but control itself in /var/lib/dpkg/info,
  # plus NAME.list (one line per path); control becomes the status stanza.
  info="$(( $(find "$ctrl" -type f ! -name control -printf '%s\n' | awk '{s += $1} END {print s + 0}') \
    + $(cd "$root" && find . | sed 's|^\.||; s|^$|/.|' | wc -c) ))"
  echo "$files $info $(( $(stat -c %s "$ctrl/control") + 30 ))"
}

# ------------------------------------------------------- 1. base package set
apt-cache "${APT[@]}" dumpavail | awk '/^Package:/ {p = $2} /^Priority: required$/ {print p}' | sort -u >"$work/required"
: >"$work/empty-status"
# shellcheck disable=SC2046
sim_install "$work/empty-status" $(cat "$work/required") usr-is-merged | sort >"$work/base"
[[ -s "$work/base" ]] || { echo "image-size.sh: no base package set (run apt-get update)" >&2; exit 2; }

# ------------------------------------------------ 2. what the runtime adds
: >"$work/slim-status"
# one stanza per base package at the resolved version, download fields dropped
# (with their continuation lines), marked installed
# shellcheck disable=SC2046
apt-cache "${APT[@]}" show $(awk '{print $1 "=" $2}' "$work/base") | awk -v RS= -v ORS='\n\n' '
  {
    split($0, l, "\n"); out = ""; keep = 1; pkg = ""; ver = ""
    for (i = 1; i in l; i++) {
      if (l[i] !~ /^[ \t]/) {
        keep = (l[i] !~ /^(Filename|Size|MD5sum|SHA1|SHA256|SHA512|Description-md5|Tag):/)
        if (l[i] ~ /^Package:/) pkg = l[i]
        if (l[i] ~ /^Version:/) ver = l[i]
      }
      if (keep) out = out l[i] "\n"
      if (i == 1) out = out "Status: install ok installed\n"
    }
    if (!seen[pkg ver]++) printf "%s\n", out
  }' >"$work/slim-status"
sim_install "$work/slim-status" "${RUNTIME_PKGS[@]}" | sort >"$work/added"

echo "debian:12-slim: $(wc -l <"$work/base") packages (Priority: required + usr-is-merged, with dependencies)"
echo "runtime stage adds $(wc -l <"$work/added") packages for: ${RUNTIME_PKGS[*]}"

# ------------------------------------------------- 3. download + unpack
fetch "$work/added"
: >"$work/sizes"
total_files=0
total_meta=0
total_stanzas=0
while read -r name ver; do
  read -r files info stanza < <(staged_bytes "$name" "$ver")
  echo "$((files + info + stanza)) $name $ver" >>"$work/sizes"
  total_files=$((total_files + files))
  total_meta=$((total_meta + info))
  total_stanzas=$((total_stanzas + stanza))
done <"$work/added"

# update-ca-certificates: /etc/ssl/certs/ca-certificates.crt (every certificate
# concatenated) and, per certificate, a NAME.pem link and a HASH.0 link.
ca_bytes=0
if [[ -d "$work/stage/ca-certificates/usr/share/ca-certificates" ]]; then
  certs=("$work"/stage/ca-certificates/usr/share/ca-certificates/mozilla/*.crt)
  ca_bytes=$(( $(cat "${certs[@]}" | wc -c) + ${#certs[@]} * (60 + 25) ))
fi
# /var/lib/dpkg/status is rewritten whole into the layer (the base's stanzas
# and the new ones), and so is status-old (the base's).
status_bytes=$(( 2 * $(stat -c %s "$work/slim-status") + total_stanzas ))

serve_raw=$(stat -c %s "$SERVE")
client_raw=$(stat -c %s "$CLIENT")
strip -o "$work/selu-serve" "$SERVE"
strip -o "$work/selu-client" "$CLIENT"
serve_s=$(stat -c %s "$work/selu-serve")
client_s=$(stat -c %s "$work/selu-client")
models=$(tree_bytes models/digits_snn)

echo
echo "added by the runtime packages, largest first (files left after slim's path-excludes + dpkg database entries):"
sort -rn "$work/sizes" | head -10 | awk '{printf "  %8.2f MB  %s %s\n", $1 / 1e6, $2, $3}'
others=$(sort -rn "$work/sizes" | tail -n +11 | awk '{s += $1} END {print s + 0}')
echo "  $(printf '%8s' "$(mb "$others")") MB  $(( $(wc -l <"$work/sizes") > 10 ? $(wc -l <"$work/sizes") - 10 : 0 )) other packages"

packages=$((total_files + total_meta))  # status stanzas: in status_bytes
layer=$((packages + ca_bytes + status_bytes + MISC_ALLOWANCE))
ours=$((serve_s + client_s + models))

base=$BASE_PUBLISHED
base_note="published figure (docker-library/repo-info)"
if [[ $MEASURE_BASE == 1 ]]; then
  fetch "$work/base"
  base_meas=0
  while read -r name ver; do
    read -r files info stanza < <(staged_bytes "$name" "$ver")
    base_meas=$((base_meas + files + info))
  done <"$work/base"
  base_meas=$((base_meas + $(stat -c %s "$work/slim-status")))
  echo
  echo "debian:12-slim measured by this method: $(mb "$base_meas") MB (published: $(mb "$BASE_PUBLISHED") MB)"
fi

total=$((base + layer + ours))
echo
printf '%-58s %9s MB\n' "debian:12-slim (amd64, $base_note)" "$(mb "$base")"
printf '%-58s %9s MB\n' "runtime packages: files" "$(mb "$total_files")"
printf '%-58s %9s MB\n' "runtime packages: /var/lib/dpkg/info entries" "$(mb "$total_meta")"
[[ $ca_bytes -gt 0 ]] && printf '%-58s %9s MB\n' "update-ca-certificates output" "$(mb "$ca_bytes")"
printf '%-58s %9s MB\n' "/var/lib/dpkg/status and status-old rewritten" "$(mb "$status_bytes")"
printf '%-58s %9s MB\n' "allowance: logs, debconf cache, ld.so.cache, passwd" "$(mb "$MISC_ALLOWANCE")"
printf '%-58s %9s MB\n' "selu-serve (stripped; $(mb "$serve_raw") MB as built)" "$(mb "$serve_s")"
printf '%-58s %9s MB\n' "selu-client (stripped; $(mb "$client_raw") MB as built)" "$(mb "$client_s")"
printf '%-58s %9s MB\n' "models/digits_snn" "$(mb "$models")"
printf '%-58s %9s MB\n' "total (limit $LIMIT_MB MB)" "$(mb "$total")"
unstripped=$((total - serve_s - client_s + serve_raw + client_raw))
echo "(with unstripped binaries it would be $(mb "$unstripped") MB)"

if awk -v t="$total" -v l="$LIMIT_MB" 'BEGIN {exit !(t > l * 1e6)}'; then
  echo "image-size: OVER the limit of $LIMIT_MB MB"
  exit 1
fi
echo "image-size: within $LIMIT_MB MB"
