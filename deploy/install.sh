#!/usr/bin/env bash
# Installs edge-exit from this checkout as systemd services on a gateway or a server
# (Raspberry Pi OS, Debian, Ubuntu, JetPack). Run as root:
#   sudo deploy/install.sh agent     # the gateway agent (default)
#   sudo deploy/install.sh server    # the offload server
#   sudo deploy/install.sh both
# Environment: PREFIX (default /opt/edge-exit), SHARED_DIR (base models and datasets to
# build the package from, default ../shared beside the checkout), NO_START=1 to install
# and enable without starting.
set -euo pipefail

ROLE=${1:-agent}
case "$ROLE" in agent | server | both) ;; *) echo "install.sh: role must be agent, server or both, not '$ROLE'" >&2; exit 2 ;; esac
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (sudo $0 $ROLE): it creates a user, /etc/edge-exit and systemd units" >&2; exit 2; }

CHECKOUT=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${PREFIX:-/opt/edge-exit}
SHARED_DIR=${SHARED_DIR:-$CHECKOUT/../shared}
STATE=/var/lib/edge-exit
ETC=/etc/edge-exit

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "install.sh: Node 20 or later is needed (found: $(node --version 2>/dev/null || echo none)); install it from your distribution or NodeSource first" >&2
  exit 1
fi
for tool in g++ make python3; do
  command -v "$tool" >/dev/null || { echo "install.sh: $tool is needed to build the native addons: apt-get install build-essential python3" >&2; exit 1; }
done

# A system user that owns the state, in the hardware groups the board has (camera, GPIO, I2C, serial).
if ! id edge-exit >/dev/null 2>&1; then
  useradd --system --home-dir "$STATE" --shell /usr/sbin/nologin edge-exit
fi
for group in video gpio i2c dialout; do
  if getent group "$group" >/dev/null; then usermod -aG "$group" edge-exit; fi
done

echo "installing $CHECKOUT into $PREFIX"
mkdir -p "$PREFIX"
# The code only: built packages, caches, logs and node_modules stay behind.
tar -C "$CHECKOUT" --exclude=./node_modules --exclude=./data --exclude=./tmp-scratch \
  --exclude='./models/*' --exclude=./.git -cf - . | tar -C "$PREFIX" -xf -
# Of models/, only the build configs are code; built packages and caches stay behind.
mkdir -p "$PREFIX/models/configs" && cp "$CHECKOUT"/models/configs/*.json "$PREFIX/models/configs/"
(cd "$PREFIX" && npm ci --omit=dev --no-audit --no-fund)

install -d -o edge-exit -g edge-exit "$STATE"
# Built packages are written next to their configs, by the service user.
chown -R edge-exit:edge-exit "$PREFIX/models"
if [ -d "$SHARED_DIR" ] && [ ! -e "$STATE/shared" ]; then ln -s "$(cd "$SHARED_DIR" && pwd)" "$STATE/shared"; fi
install -d -m 755 "$ETC"
[ -e "$ETC/agent.json" ] || install -m 644 "$CHECKOUT/deploy/gateway.config.json" "$ETC/agent.json"
[ -e "$ETC/environment" ] || install -m 600 /dev/null "$ETC/environment"

# The package is built once, as the service user, with progress on this terminal.
if [ -d "$STATE/shared" ]; then
  runuser -u edge-exit -- env EDGE_EXIT_SHARED_DIR="$STATE/shared" node "$PREFIX/bin/edge-exit.js" build-model -c mobilenet_v2_cifar10
else
  echo "install.sh: no base models at $SHARED_DIR; put them in $STATE/shared and run: sudo -u edge-exit EDGE_EXIT_SHARED_DIR=$STATE/shared node $PREFIX/bin/edge-exit.js build-model" >&2
fi

units=()
[ "$ROLE" = server ] || units+=(edge-exit-agent.service)
[ "$ROLE" = agent ] || units+=(edge-exit-server.service)
for unit in "${units[@]}"; do
  sed "s#/opt/edge-exit#$PREFIX#g" "$CHECKOUT/deploy/systemd/$unit" >"/etc/systemd/system/$unit"
done
systemctl daemon-reload
if [ "${NO_START:-0}" = 1 ]; then systemctl enable "${units[@]}"; else systemctl enable --now "${units[@]}"; fi

cat <<DONE
Installed ${units[*]}.
Next: edit $ETC/agent.json (broker URL, camera, bridge) and put secrets such as
EDGE_EXIT__MQTT__PASSWORD=... in $ETC/environment, then: systemctl restart ${units[*]}
Watch it: journalctl -fu ${units[0]}
Live state and logs: sudo -u edge-exit EDGE_EXIT_CONFIG=$ETC/agent.json node $PREFIX/bin/edge-exit.js status (or logs)
DONE
