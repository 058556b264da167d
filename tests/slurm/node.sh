#!/bin/sh
# One node of the test cluster: run by tests/slurmcluster.py as root inside
# the node's own network, mount and UTS namespaces. Gives the node its name,
# a /tmp and /dev/shm of its own (Slurm's pmix plugin makes a per-step folder
# in /tmp named alike on every node), then becomes the node's slurmd.
#
#   node.sh NODE STASH [SHARED...]   SHARED: folders under /tmp that stay shared
set -eu
node=$1 stash=$2
shift 2
hostname "$node"
# A folder under /tmp is hidden by the new /tmp: hold it under STASH first.
i=0
for dir in "$@"; do
  i=$((i + 1))
  mkdir -p "$stash/$i"
  mount --bind "$dir" "$stash/$i"
done
mount -t tmpfs -o mode=1777 "tmp-$node" /tmp
mount -t tmpfs -o mode=1777 "shm-$node" /dev/shm
i=0
for dir in "$@"; do
  i=$((i + 1))
  mkdir -p "$dir"
  mount --move "$stash/$i" "$dir"
done
exec slurmd -D -N "$node"
