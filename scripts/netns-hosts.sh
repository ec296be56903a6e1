#!/usr/bin/env bash
# Two test "hosts" on this machine: network namespaces <name>a (10.77.0.1) and <name>b (10.77.0.2)
# joined by a veth pair, each with its own loopback. Needs root (CAP_NET_ADMIN) and iproute2.
#   scripts/netns-hosts.sh up [name]     # default name: mc4j
#   scripts/netns-hosts.sh down [name]
# Run a command on a host with: ip netns exec <name>a <command>
set -euo pipefail
action=${1:?usage: netns-hosts.sh up|down [name]}
name=${2:-mc4j}
a=${name}a
b=${name}b
case "$action" in
  up)
    ip netns add "$a"
    ip netns add "$b"
    ip link add "${name}va" type veth peer name "${name}vb"
    ip link set "${name}va" netns "$a"
    ip link set "${name}vb" netns "$b"
    ip -n "$a" addr add 10.77.0.1/24 dev "${name}va"
    ip -n "$b" addr add 10.77.0.2/24 dev "${name}vb"
    for ns in "$a" "$b"; do
      ip -n "$ns" link set lo up
    done
    ip -n "$a" link set "${name}va" up
    ip -n "$b" link set "${name}vb" up
    ;;
  down)
    ip netns del "$a" 2>/dev/null || true
    ip netns del "$b" 2>/dev/null || true
    ;;
  *)
    echo "usage: netns-hosts.sh up|down [name]" >&2
    exit 2
    ;;
esac
