#!/usr/bin/env bash
# mcc serve, with its default limits, under a flood while a legitimate
# caller dials in to a real conference at 10 calls/s. Three runs, each
# with a fresh daemon:
#
#   invite   sipp sends INVITEs to an unknown conference as fast as it can
#            (target 100,000/s) for 30 s, from 127.0.0.3
#   options  the same with OPTIONS
#   tcp      2,000 idle TCP connections held for 30 s (from 127.0.0.3, and
#            again spread over 40 source addresses), the caller on TCP
#   spread   OPTIONS from 1,000 addresses (127.0.1.1 on), each under the
#            per-source rate, 20,000/s in all for 30 s: what bounds this is
#            the number of live server transactions (200,000), so it also
#            reports the highest count seen on /metrics
#
# For each it reports the share of the 300 legitimate calls (127.0.0.2,
# sipp caller.xml: INVITE, 200 with the offer, ACK with the answer, BYE)
# that succeeded, the rate the flood really reached, mcc's peak RSS
# (VmHWM) and the seconds from the flood's end until an OPTIONS from the
# flooding address is answered 200 again. Everything is on 127.0.0.0/8.
#
#   bash bench/flood.sh [invite|options|tcp ...]     default: all three
set -euo pipefail
cd "$(dirname "$0")/.."
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=(invite options tcp spread)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/mcc" ./cmd/mcc
go build -o "$work/floodprobe" ./bench/floodprobe
sip=127.0.0.1:25060

start_mcc() {
	data="$work/data-$1"
	"$work/mcc" serve --data "$data" --sip "udp:$sip,tcp:$sip" --host 127.0.0.1 --api 127.0.0.1:0 --log-level error 2>"$work/serve-$1.log" &
	pid=$!
	for _ in $(seq 100); do [ -s "$data/api.addr" ] && break; sleep 0.05; done
	MCC_DATA="$data" "$work/mcc" session create lecture --media audio,video >/dev/null
	echo "rss before: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"
}

stop_mcc() {
	# what mcc saw of it: the messages its guard refused, by reason
	curl -s "http://$(cat "$data/api.addr")/metrics" | grep '^mcc_sip_rejected_total' | sed 's/^/  /' || true
	echo "peak rss: $(awk '/VmHWM/ {print $2, $3}' /proc/$pid/status)"
	kill -TERM "$pid"
	wait "$pid" || true
}

# legit TRANSPORT: 300 calls at 10/s from 127.0.0.2; prints successful and failed
legit() {
	rm -f "$work/legit.csv"
	timeout 90 sipp -sf conference/testdata/sipp/caller.xml -s lecture -i 127.0.0.2 -p 0 -t "$1" -r 10 -m 300 \
		-timeout 80 -timeout_error -nostdin -trace_stat -stf "$work/legit.csv" "$sip" >/dev/null 2>&1 || true
	tail -1 "$work/legit.csv" | awk -F';' '{printf "legitimate calls: %d of %d succeeded (%.1f%%), %d failed\n", $16, 300, $16/3, $18}'
}

flood() { # SCENARIO: 30 s from 127.0.0.3, in the background
	rm -f "$work/flood.csv"
	timeout 31 sipp -sf "bench/sipp/$1" -i 127.0.0.3 -p 0 -t u1 -r 100000 -rp 1000 -m 3000000 -nostdin \
		-trace_stat -fd 1 -stf "$work/flood.csv" "$sip" >/dev/null 2>&1 &
	floodpid=$!
}

flood_report() {
	wait "$floodpid" || true
	tail -1 "$work/flood.csv" | awk -F';' '{printf "flood: %d requests in %s, %.0f/s\n", $13, $5, $8}'
	echo "seconds until the flooding address is answered again: $("$work/floodprobe" recover -from 127.0.0.3 -to "$sip")"
}

for run in "${runs[@]}"; do
	echo "== $run"
	case $run in
	invite | options)
		start_mcc "$run"
		flood "flood-$run.xml"
		sleep 0.5
		legit u1
		flood_report
		stop_mcc
		;;
	tcp)
		start_mcc tcp-one
		"$work/floodprobe" idle -from 127.0.0.3 -to "$sip" -n 2000 -for 30s &
		probe=$!
		sleep 1
		legit t1
		wait $probe
		stop_mcc
		start_mcc tcp-spread
		for i in $(seq 10 49); do "$work/floodprobe" idle -from "127.0.0.$i" -to "$sip" -n 50 -for 30s >>"$work/idle.out" & done
		sleep 1
		legit t1
		wait $(jobs -p | grep -v "^$pid$") 2>/dev/null || true
		awk '{o += $1; c += $3} END {printf "%d opened from 40 addresses, %d closed by mcc after 30s\n", o, c}' "$work/idle.out"
		stop_mcc
		;;
	spread)
		start_mcc spread
		"$work/floodprobe" spray -sources 1000 -rate 20000 -for 30s -to "$sip" >"$work/spray.out" &
		spray=$!
		sleep 0.5
		legit u1 &
		legitpid=$!
		peak=0
		for _ in $(seq 70); do # until the spray and the caller end, at most 70 s
			n=$(curl -s "http://$(cat "$data/api.addr")/metrics" | awk '$1 == "mcc_sip_server_transactions" {print $2}')
			[ "${n:-0}" -gt $peak ] && peak=$n
			kill -0 $spray 2>/dev/null || kill -0 $legitpid 2>/dev/null || break
			sleep 1
		done
		wait $spray $legitpid || true
		cat "$work/spray.out"
		echo "highest live server transactions seen: $peak"
		stop_mcc
		;;
	*) echo "unknown run $run"; exit 2 ;;
	esac
done
