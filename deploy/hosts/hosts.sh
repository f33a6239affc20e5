#!/bin/sh
# Three chip "hosts" on one machine, each a network namespace with its own address, for trying a
# multi-host deployment (and for tests/deploy/test_hosts.py). Needs root (CAP_NET_ADMIN).
#
#   hosts.sh up     create them; fails, touching nothing, if any of the names below exists
#   hosts.sh down   remove exactly what `up` made (the names below); harmless if they are gone
#
# What `up` makes, every name starting with "chip-" so nothing else on the machine is touched:
#   chip-br0             a bridge in this (the root) namespace, address 10.77.0.254/24: the
#                        "network" the hosts share; Redis, PostgreSQL and Courier are reached here
#   chip-h1..chip-h3     network namespaces, the hosts
#   chip-v1..chip-v3     the root side of each host's veth pair, a port of chip-br0;
#                        `ip link set chip-vN down` cuts host N off the network
#   eth0 in chip-hN      the host side of that pair, address 10.77.0.N/24 (lo is up too)
#
# Run a program on a host with: ip netns exec chip-h1 <command> (e.g. chip.py --address 10.77.0.1).
# CHIP_HOSTS (default 3) sets how many hosts there are.
set -eu

COUNT="${CHIP_HOSTS:-3}"
BRIDGE=chip-br0
GATEWAY=10.77.0.254/24

up() {
    if ip link show "$BRIDGE" >/dev/null 2>&1; then
        echo "hosts.sh: $BRIDGE exists already; run 'hosts.sh down' first" >&2
        exit 1
    fi
    for n in $(seq "$COUNT"); do
        if ip netns list | grep -qw "chip-h$n"; then
            echo "hosts.sh: namespace chip-h$n exists already; run 'hosts.sh down' first" >&2
            exit 1
        fi
    done
    ip link add "$BRIDGE" type bridge
    ip addr add "$GATEWAY" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    for n in $(seq "$COUNT"); do
        ip netns add "chip-h$n"
        ip link add "chip-v$n" type veth peer name "chip-e$n"
        ip link set "chip-e$n" netns "chip-h$n" name eth0
        ip link set "chip-v$n" master "$BRIDGE" up
        ip -n "chip-h$n" addr add "10.77.0.$n/24" dev eth0
        ip -n "chip-h$n" link set eth0 up
        ip -n "chip-h$n" link set lo up
    done
}

down() {
    # the veth pair first (deleting one end deletes both): a deleted namespace takes its end
    # with it, but only some moments later
    for n in $(seq "$COUNT"); do
        if ip link show "chip-v$n" >/dev/null 2>&1; then
            ip link delete "chip-v$n"
        fi
        if ip netns list | grep -qw "chip-h$n"; then
            ip netns delete "chip-h$n"
        fi
    done
    if ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link delete "$BRIDGE"
    fi
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) echo "usage: hosts.sh up|down" >&2; exit 2 ;;
esac
