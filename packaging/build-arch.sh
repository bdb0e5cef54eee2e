#!/usr/bin/env bash
# Build Archy's Arch Linux package with makepkg, then check its file list.
#
#   bash packaging/build-arch.sh [OUTDIR]        (default: artifacts/package)
#
# The source is `git archive` of HEAD (or $ARCHY_PKG_REV), built in a fresh directory: what is
# packaged is what is committed. The PKGBUILD itself is taken from the work tree.
#
# On Arch as a normal user this is plain makepkg. As root (CI, on Debian) it:
# - runs makepkg as the unprivileged user `archy-build` (makepkg refuses root), reaching root's
#   rustup toolchain through bind mounts in a private mount namespace (/root is 0700);
# - passes --nodeps: Debian's makepkg + pacman-package-manager work, but Debian's pacman
#   database knows none of Arch's package names (cargo, python-build, tmux...);
# - provides the makedepends that Debian lacks or has too old (hatchling >= 1.18, build,
#   installer) from PyPI in a cache directory, behind a `python` wrapper (Debian names it python3);
# - keeps CARGO_HOME and CARGO_TARGET_DIR in /var/cache/archy-build so a rerun is incremental.
set -euo pipefail

die() { echo "build-arch: $*" >&2; exit 1; }
repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$repo/artifacts/package}" && cd "${1:-$repo/artifacts/package}" && pwd)
pkgbuild=$repo/packaging/arch/PKGBUILD
pkgname=$(sed -n 's/^pkgname=//p' "$pkgbuild")
pkgver=$(sed -n 's/^pkgver=//p' "$pkgbuild")
pkgrel=$(sed -n 's/^pkgrel=//p' "$pkgbuild")
cargo_ver=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$repo/Cargo.toml" | head -n1)
[ "$pkgver" = "$cargo_ver" ] || die "PKGBUILD pkgver=$pkgver but Cargo.toml says $cargo_ver"
if [ -f "$repo/python/pyproject.toml" ]; then
  py_ver=$(sed -n '/^\[project\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$repo/python/pyproject.toml" | head -n1)
  [ "$pkgver" = "$py_ver" ] || die "PKGBUILD pkgver=$pkgver but python/pyproject.toml says $py_ver"
fi
for f in README.md LICENSE; do
  git -C "$repo" cat-file -e "${ARCHY_PKG_REV:-HEAD}:$f" 2>/dev/null || die "$f is not committed: the package needs it"
done
command -v makepkg >/dev/null || die "makepkg missing (Debian: apt install makepkg pacman-package-manager)"

work=$(mktemp -d /tmp/archy-pkg.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
chmod 0755 "$work"
cp "$pkgbuild" "$repo/packaging/arch/archy.install" "$work/"
rev=${ARCHY_PKG_REV:-HEAD}
git -C "$repo" archive --format=tar.gz --prefix="$pkgname-$pkgver/" \
  -o "$work/$pkgname-$pkgver.tar.gz" "$rev"
mkdir -p "$work/out"

t0=$(date +%s)
if [ "$(id -u)" -ne 0 ]; then
  (cd "$work" && PKGDEST="$work/out" BUILDDIR="$work/build" makepkg --cleanbuild --force --noconfirm)
else
  user=archy-build
  cache=/var/cache/archy-build
  if ! id "$user" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$cache" --shell /usr/sbin/nologin "$user"
  fi
  mkdir -p "$cache"
  chown "$user:$user" "$cache"
  # Debian's pacman ships no database directory; makepkg's .BUILDINFO asks pacman for the
  # installed packages and complains without one. An empty database answers "none".
  [ -d /var/lib/pacman ] || ! command -v pacman >/dev/null || mkdir -p /var/lib/pacman
  chown -R "$user:$user" "$work"
  uid=$(id -u "$user"); gid=$(id -g "$user")
  as_builder=(setpriv "--reuid=$uid" "--regid=$gid" --init-groups
    env -i "HOME=$cache" "USER=$user" "LOGNAME=$user" "LANG=C.UTF-8" "TERM=dumb")

  # Rust: root's rustup toolchain, made reachable for the builder when /root hides it.
  cargo_bin=$(command -v cargo) || die "cargo not found"
  tool_path=$(dirname "$cargo_bin")
  binds=()
  rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
  if ! "${as_builder[@]}" test -x "$cargo_bin"; then
    mkdir -p "$work/toolchain/bin" "$work/toolchain/rustup"
    binds+=("$tool_path:$work/toolchain/bin")
    tool_path=$work/toolchain/bin
    if [ -d "$rustup_home" ]; then
      binds+=("$rustup_home:$work/toolchain/rustup")
      rustup_home=$work/toolchain/rustup
    fi
  fi

  # Python makedepends: the distribution's when it has them, else from PyPI into the cache.
  mkdir -p "$work/shim"
  py=$(command -v python || true)
  if [ -z "$py" ] || ! "${as_builder[@]}" PATH=/usr/bin:/bin "$py" -c 'import build, installer, hatchling' 2>/dev/null; then
    sys_py=/usr/bin/python3
    [ -x "$sys_py" ] || die "no system python3 for the Python part of the package"
    deps=$cache/pydeps
    want="hatchling>=1.18 build installer"
    if [ "$(cat "$deps/.want" 2>/dev/null)" != "$want" ]; then
      echo "build-arch: Python makedepends from PyPI into $deps: $want"
      rm -rf "$deps"
      # shellcheck disable=SC2086 # $want is a list of requirements
      "${as_builder[@]}" PATH=/usr/bin:/bin "$sys_py" -m pip install --quiet --disable-pip-version-check \
        --no-warn-script-location --target "$deps" $want
      echo "$want" > "$deps/.want"
    fi
    # DEB_PYTHON_INSTALL_LAYOUT=deb: installer then lays files out as the system python expects
    # (/usr/lib/python3/dist-packages) instead of Debian's /usr/local default.
    printf '#!/bin/sh\nPYTHONPATH=%s${PYTHONPATH:+:$PYTHONPATH} DEB_PYTHON_INSTALL_LAYOUT=deb exec %s "$@"\n' \
      "$deps" "$sys_py" > "$work/shim/python"
    chmod 0755 "$work/shim/python"
  fi

  makepkg_env=("PATH=$work/shim:$tool_path:/usr/bin:/bin" "RUSTUP_HOME=$rustup_home"
    "CARGO_HOME=$cache/cargo" "CARGO_TARGET_DIR=$cache/target" "CARGO_TERM_COLOR=never"
    "PKGDEST=$work/out" "BUILDDIR=$work/build" "SRCDEST=$work")
  makepkg_cmd=(makepkg --nodeps --cleanbuild --force --noconfirm --nocolor)
  if [ ${#binds[@]} -gt 0 ]; then
    # A private mount namespace: the binds vanish with it, nothing to undo.
    mounts=""
    for b in "${binds[@]}"; do mounts+="mount --bind '${b%%:*}' '${b#*:}' && "; done
    (cd "$work" && unshare --mount --propagation private sh -c "${mounts}exec \"\$@\"" sh \
      "${as_builder[@]}" "${makepkg_env[@]}" "${makepkg_cmd[@]}")
  else
    (cd "$work" && "${as_builder[@]}" "${makepkg_env[@]}" "${makepkg_cmd[@]}")
  fi
fi
t1=$(date +%s)

pkg=$(find "$work/out" -name "$pkgname-$pkgver-$pkgrel-*.pkg.tar.*" | head -n1)
[ -n "$pkg" ] || die "makepkg produced no package"

# ---- the file list
list=$(bsdtar -tf "$pkg" | sed 's|/$||' | sort)
missing=0
need() {
  if ! grep -Eqx "$1" <<<"$list"; then echo "build-arch: MISSING $1" >&2; missing=1; fi
}
need 'usr/bin/archy-executor'
need 'usr/bin/archyctl'
need 'usr/lib/systemd/user/archy\.socket'
need 'usr/lib/systemd/user/archy\.service'
need 'usr/share/doc/archy/README\.md'
need 'usr/share/licenses/archy/LICENSE'
need '\.PKGINFO'
need '\.INSTALL'
if [ -f "$repo/python/pyproject.toml" ]; then
  need 'usr/bin/archy'
  need 'usr/lib/python3[^/]*/(site|dist)-packages/archy/client\.py'
  need 'usr/lib/python3[^/]*/(site|dist)-packages/archy-[^/]*\.dist-info/METADATA'
fi
stray=$(grep -Ev '^(\.PKGINFO|\.BUILDINFO|\.MTREE|\.INSTALL|usr(/.*)?)$' <<<"$list" || true)
[ -z "$stray" ] || { echo "build-arch: files outside /usr:" >&2; echo "$stray" >&2; missing=1; }
leak=$(grep -E "archy-pkg\.|/build/|/src/$pkgname-" <<<"$list" || true)
[ -z "$leak" ] || { echo "build-arch: build paths leaked into the package:" >&2; echo "$leak" >&2; missing=1; }
exec_start=$(bsdtar -xOf "$pkg" usr/lib/systemd/user/archy.service | sed -n 's/^ExecStart=//p')
[ "$exec_start" = /usr/bin/archy-executor ] || { echo "build-arch: ExecStart=$exec_start" >&2; missing=1; }
modes=$(bsdtar -tvf "$pkg" usr/bin/archy-executor usr/bin/archyctl | awk '{print $1}' | sort -u)
[ "$modes" = "-rwxr-xr-x" ] || { echo "build-arch: binary modes $modes" >&2; missing=1; }
if command -v pacman >/dev/null; then
  pacman -Qip "$pkg" 2>/dev/null | grep -E '^(Name|Version|Installed Size|Depends On)' || true
fi
[ "$missing" -eq 0 ] || die "package file list check failed ($pkg)"

cp "$pkg" "$out/"
bsdtar -tvf "$pkg" > "$out/$(basename "$pkg").files"
echo "build-arch: OK $(basename "$pkg") ($(du -h "$pkg" | cut -f1), $(grep -c . <<<"$list") entries, makepkg $((t1 - t0)) s) -> $out"
