#!/usr/bin/env bash
# Dial-in rate: a sipp UAC (INVITE, 200 with the multicast SDP, ACK, BYE)
# against "mcc serve", and the same scenario against sipp's own UAS in the
# same run. For each rate it runs CALLS_PER_RATE calls (at most ~8 s of
# calls) and reports failed and successful calls and the rate sipp really
# achieved; the figure is the highest achieved rate with 0 failures (where
# sipp kept up with the target), and its ratio to sipp's UAS. Everything is
# on 127.0.0.1. All calls come from one sipp, so the per-source rate limit
# is off (--sip-source-rate -1): this measures mcc, not its limiter. The
# bound on live transactions stays at its default (200,000: each call keeps
# two for 32 s, and a run makes at most 20,000 calls).
#
#   bash bench/dialin-rate.sh [RATES...]       default: 250 500 1000 1500 2000 2500 3000
set -euo pipefail
cd "$(dirname "$0")/.."
rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(250 500 1000 1500 2000 2500 3000)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

go build -o "$work/mcc" ./cmd/mcc
"$work/mcc" serve --data "$work/data" --sip udp:127.0.0.1:25060 --host 127.0.0.1 --sip-source-rate -1 --api 127.0.0.1:0 --log-level warn 2>"$work/serve.log" &
mccpid=$!
for _ in $(seq 50); do [ -s "$work/data/api.addr" ] && break; sleep 0.1; done
MCC_DATA="$work/data" "$work/mcc" session create lecture --media audio,video >/dev/null

# In the foreground of a background job (sipp's -bg forks away from the
# shell, out of reach of the trap that ends the run's processes).
timeout 900 sipp -sn uas -i 127.0.0.1 -p 25070 -nostdin >/dev/null 2>&1 &

run() { # target rate -> failed successful achieved-rate
	local target=$1 rate=$2 calls=$(( $2 * 5 ))
	[ $calls -gt 20000 ] && calls=20000
	timeout 120 sipp -sf conference/testdata/sipp/caller.xml -s lecture -i 127.0.0.1 -p 0 -t u1 -r "$rate" -m "$calls" \
		-l 5000 -timeout 60 -timeout_error -nostdin -trace_stat -stf "$work/stat.csv" "$target" >/dev/null 2>&1 || true
	# the last line of sipp's statistics file: FailedCall(C) is column 18,
	# SuccessfulCall(C) 16, CallRate(C) 8 (the rate sipp really achieved)
	tail -1 "$work/stat.csv" | awk -F';' '{printf "%s %s %.0f\n", $18, $16, $8}'
	rm -f "$work/stat.csv"
}

printf '%-6s %-28s %-28s\n' rate "mcc failed/ok (cps)" "sipp-uas failed/ok (cps)"
best_mcc=0; best_uas=0
for r in "${rates[@]}"; do
	read -r mf mo mr < <(run 127.0.0.1:25060 "$r")
	read -r uf uo ur < <(run 127.0.0.1:25070 "$r")
	printf '%-6s %-28s %-28s\n' "$r" "$mf/$mo ($mr)" "$uf/$uo ($ur)"
	# a rate counts when no call failed and sipp kept up (>= 95% of it)
	[ "$mf" = 0 ] && [ "$mo" -gt 0 ] && [ $((mr * 100)) -ge $((r * 95)) ] && [ "$mr" -gt $best_mcc ] && best_mcc=$mr
	[ "$uf" = 0 ] && [ "$uo" -gt 0 ] && [ $((ur * 100)) -ge $((r * 95)) ] && [ "$ur" -gt $best_uas ] && best_uas=$ur
	true
done
echo "highest achieved rate with 0 failed calls: mcc $best_mcc cps, sipp UAS $best_uas cps"
echo "mcc's peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$mccpid/status)"
[ $best_uas -gt 0 ] && awk -v a=$best_mcc -v b=$best_uas 'BEGIN{printf "ratio mcc/sipp-uas: %.2f\n", a/b}'
