#!/usr/bin/env bash
# Makes sure Debian's nats-server is installed, for the NATS JetStream tests (they start their own
# servers on free ports with temporary stores; nothing here starts one). Installs only when missing,
# and only as root with apt-get; otherwise says how.
set -euo pipefail

for p in "${SEIGO_NATS_SERVER:-}" "$(command -v nats-server || true)" /usr/sbin/nats-server /usr/bin/nats-server; do
  if [[ -n $p && -x $p ]]; then echo "nats-server: $p ($("$p" --version))"; exit 0; fi
done
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "debian-nats: nats-server is missing; install it: sudo apt-get install -y nats-server" >&2
  exit 2
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -q update
apt-get -q -y --no-install-recommends --no-upgrade -o Dpkg::Use-Pty=0 install nats-server </dev/null
/usr/sbin/nats-server --version
