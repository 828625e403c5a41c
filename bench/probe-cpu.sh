#!/usr/bin/env bash
# What mcc probe costs in CPU per 1,000 packets a second, next to ffmpeg
# receiving the same stream in the same run (bench/probecpu). Everything
# runs in a network namespace of its own, on loopback; needs root, ffmpeg
# and unshare.
#
#   bash bench/probe-cpu.sh [-for 20s] [-rates 1000,4000]
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/mcc" ./cmd/mcc
go build -o "$work/probecpu" ./bench/probecpu
unshare --net "$work/probecpu" -mcc "$work/mcc" "$@"
