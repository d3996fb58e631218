#!/bin/sh
# Installs every build and test dependency from Debian by package name.
# Idempotent and quiet when everything is present; uses sudo when not root.
set -eu
PKGS="build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
libluajit2-5.1-dev luajit2 libuv1-dev node-llhttp librdkafka-dev libyaml-dev
lua-busted lua-cjson libssl-dev libwslay-dev libjwt-dev
libjansson-dev jq curl openssl python3 python3-websockets hyperfine time"

missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
