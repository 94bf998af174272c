#!/usr/bin/env bash
# Installs bridgekeeper for real use, or removes it:
#
#   bash scripts/install.sh [--prefix DIR] [--hermes-home DIR] [--systemd] [--binary FILE]
#   bash scripts/install.sh --uninstall [--prefix DIR] [--hermes-home DIR] [--systemd]
#
# - DIR/bin/bridgekeeper: the release binary (built here with cargo, or --binary FILE), stripped.
# - DIR/share/bridgekeeper/node-bridge: the WhatsApp connector with its production packages
#   (`npm ci --omit=dev`), where the binary looks for it.
# - --hermes-home DIR: the Hermes plugin (hermes-plugin/) into DIR/plugins/bridgekeeper.
# - --systemd: a user unit (Type=notify, a watchdog) at ~/.config/systemd/user/bridgekeeper.service.
#
# The default prefix is ~/.local. Running it again upgrades in place; nothing under a Hermes
# home but the plugin's folder is ever written or removed (sessions, pairing files, bridge.log
# and bridgekeeper's state stay). --uninstall removes what this script put there and nothing else.
set -euo pipefail

usage() {
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
}

prefix="$HOME/.local"
hermes_home=""
systemd=0
uninstall=0
binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --hermes-home) hermes_home=${2:?--hermes-home needs a directory}; shift 2 ;;
    --hermes-home=*) hermes_home=${1#*=}; shift ;;
    --binary) binary=${2:?--binary needs a file}; shift 2 ;;
    --binary=*) binary=${1#*=}; shift ;;
    --systemd) systemd=1; shift ;;
    --uninstall) uninstall=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
bin="$prefix/bin/bridgekeeper"
share="$prefix/share/bridgekeeper"
unit="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user/bridgekeeper.service"
# Files this script writes carry this line (or, for folders, a file of this name), so that
# --uninstall and an upgrade touch only what is theirs.
marker="# Written by bridgekeeper's scripts/install.sh"
ours=".installed-by-bridgekeeper"
plugin=""
[ -n "$hermes_home" ] && plugin="$hermes_home/plugins/bridgekeeper"

say() { echo "install.sh: $*"; }
fail() { echo "install.sh: $*" >&2; exit 1; }

# Replaces folder $2 with folder $1 (same file system), the old one gone only once the new one
# is in place.
swap_in() {
  local new=$1 dest=$2
  rm -rf "$dest.old"
  [ -e "$dest" ] && mv "$dest" "$dest.old"
  mv "$new" "$dest"
  rm -rf "$dest.old"
}

if [ "$uninstall" = 1 ]; then
  if [ -f "$bin" ]; then
    "$bin" --version 2>/dev/null | grep -q '^bridgekeeper' || fail "$bin is not bridgekeeper; left as it is"
    rm -f "$bin"
    say "removed $bin"
  fi
  if [ -f "$share/$ours" ]; then
    rm -rf "$share"
    say "removed $share"
  fi
  if [ -n "$plugin" ] && [ -f "$plugin/$ours" ]; then
    rm -rf "$plugin"
    say "removed $plugin (Hermes uses its own adapters again; its plugins.enabled entry is harmless)"
    if grep -qxF "BRIDGEKEEPER_BIN=$bin" "$hermes_home/.env" 2>/dev/null; then
      grep -vxF "BRIDGEKEEPER_BIN=$bin" "$hermes_home/.env" >"$hermes_home/.env.new" || true
      chmod 0600 "$hermes_home/.env.new"
      mv -f "$hermes_home/.env.new" "$hermes_home/.env"
      say "removed BRIDGEKEEPER_BIN from $hermes_home/.env"
    fi
  fi
  if [ "$systemd" = 1 ] && [ -f "$unit" ] && grep -qF "$marker" "$unit"; then
    rm -f "$unit"
    say "removed $unit; run: systemctl --user daemon-reload"
  fi
  say "left in place: every Hermes home (sessions, pairing files, bridge.log, bridgekeeper's state)"
  exit 0
fi

command -v node >/dev/null || fail "node (20 or newer) is needed for the WhatsApp connector"
command -v npm >/dev/null || fail "npm is needed to install the WhatsApp connector's packages"
command -v strip >/dev/null || fail "strip (binutils) is needed to install the binary without its debug tables"
[ -d "$root/node-bridge/src" ] || fail "$root/node-bridge is missing: run this from a bridgekeeper checkout"
if [ -n "$plugin" ]; then
  [ -d "$root/hermes-plugin" ] || fail "--hermes-home: this checkout has no Hermes plugin (hermes-plugin/)"
fi

if [ -z "$binary" ]; then
  say "building the release binary (cargo build --release --locked)"
  (cd "$root" && cargo build --release --locked --quiet --bin bridgekeeper)
  binary="${CARGO_TARGET_DIR:-$root/target}/release/bridgekeeper"
fi
[ -x "$binary" ] || fail "$binary is not an executable"
"$binary" --version | grep -q '^bridgekeeper' || fail "$binary is not bridgekeeper"

mkdir -p "$prefix/bin" "$share"
touch "$share/$ours"
staged="$bin.new.$$"
cp "$binary" "$staged"
strip "$staged"
chmod 0755 "$staged"
mv -f "$staged" "$bin"
say "installed $bin ($(du -k "$bin" | cut -f1) KiB, $("$bin" --version))"

staged="$share/node-bridge.new"
rm -rf "$staged"
mkdir -p "$staged"
cp -R "$root/node-bridge/src" "$staged/src"
cp "$root/node-bridge/package.json" "$root/node-bridge/package-lock.json" "$root/node-bridge/legacy-bridge.js" "$staged/"
(cd "$staged" && npm ci --omit=dev --no-audit --no-fund --loglevel=error >/dev/null)
swap_in "$staged" "$share/node-bridge"
say "installed the WhatsApp connector at $share/node-bridge"

if [ -n "$plugin" ]; then
  mkdir -p "$hermes_home/plugins"
  staged="$plugin.new"
  rm -rf "$staged"
  cp -R "$root/hermes-plugin" "$staged"
  touch "$staged/$ours"
  swap_in "$staged" "$plugin"
  say "installed the Hermes plugin at $plugin"
  # The gateway's PATH (a service's) may not hold $prefix/bin: the plugin is told where it is.
  env_file="$hermes_home/.env"
  if ! grep -q '^BRIDGEKEEPER_BIN=' "$env_file" 2>/dev/null; then
    printf 'BRIDGEKEEPER_BIN=%s\n' "$bin" >>"$env_file"
    chmod 0600 "$env_file"
    say "set BRIDGEKEEPER_BIN=$bin in $env_file"
  fi
  if command -v hermes >/dev/null && HERMES_HOME="$hermes_home" hermes plugins enable bridgekeeper >/dev/null 2>&1; then
    say "enabled the plugin (plugins.enabled in $hermes_home/config.yaml); restart the gateway"
  else
    say "enable the plugin with: HERMES_HOME=$hermes_home hermes plugins enable bridgekeeper"
  fi
fi

if [ "$systemd" = 1 ]; then
  mkdir -p "$(dirname "$unit")"
  if [ -f "$unit" ] && ! grep -qF "$marker" "$unit"; then
    fail "$unit exists and was not written by this script; left as it is"
  fi
  environment=""
  [ -n "$hermes_home" ] && environment="Environment=HERMES_HOME=$hermes_home"
  cat >"$unit" <<EOF
$marker
[Unit]
Description=bridgekeeper (Hermes relay connector)
After=network-online.target
Wants=network-online.target

[Service]
Type=notify
ExecStart=$bin run --relay 127.0.0.1:8790
$environment
WatchdogSec=30
Restart=on-failure
RestartSec=2

[Install]
WantedBy=default.target
EOF
  say "wrote $unit (the relay on 127.0.0.1:8790; GATEWAY_RELAY_SECRET in Hermes' .env)"
  say "start it with: systemctl --user daemon-reload && systemctl --user enable --now bridgekeeper"
fi

case ":$PATH:" in
  *":$prefix/bin:"*) ;;
  *) say "$prefix/bin is not on PATH: add it, or run $bin" ;;
esac
say "next: $bin doctor"
