#!/usr/bin/env bash
# The LastFM sweeps (m, k) and ReaRec-ERL/PRL, run side by side on one lent GPU, over the seed-42
# SASRec and IGR-SR of reports/lastfm-study-2026-11-27 (copied in as RUNS, so they are reused,
# not retrained).  Usage, from the repository root of an installed igrsr:
#     DATA=path/LastFM.txt RUNS=dir/with/LastFM/runs LIMIT=seconds PACK=dir bash reports/lastfm-sweeps-2026-11-27/gpu_run.sh
# Each part is its own `igrsr study` process (one CPU thread each; the GPU is shared): the
# processes share RUNS, and `igrsr study` with the same arguments later resumes any run cut off
# by LIMIT from its last checkpoint and writes the combined report.  New run directories are
# packed into PACK as runs.tgz.part-* (15 MB pieces, last.pt left out of finished runs).
set -uo pipefail
: "${DATA:?}" "${RUNS:?}" "${LIMIT:?}" "${PACK:?}"
STUDY=${STUDY:-/work/study-lastfm-gpu}
COMMON="--data $DATA --lr 5e-3 --batch-size 128 --epochs 200 --patience 30 --stage2-lr 1e-3 --stage2-epochs 5
        --noise= --seeds 1 --threads 1 --no-progress --device ${DEVICE:-cuda}"
before=$(ls "$RUNS/LastFM")
part() {  # part NAME ARGS...: one study process, its own --out (sharing RUNS), under LIMIT
    local name=$1
    shift
    mkdir -p "$STUDY/$name"
    ln -sfn "$RUNS" "$STUDY/$name/runs"
    timeout --signal=INT --kill-after=20 "$LIMIT" igrsr study $COMMON --out "$STUDY/$name" "$@" \
        > "$STUDY/$name.log" 2>&1
    echo "$name: exit $?" >> "$STUDY/exits.txt"
}
for m in 1 2 3 5 6; do
    part "m$m" --models sasrec,igrsr --ablations= --intents "$m" --prefixes= &
done
for k in 0 2 8 16; do
    part "k$k" --models sasrec,igrsr --ablations= --intents= --prefixes "$k" &
done
for variant in erl prl; do
    part "rearec-$variant" --models "rearec-$variant" --ablations= --intents= --prefixes= &
done
wait
cat "$STUDY/exits.txt"
new=$(comm -13 <(echo "$before") <(ls "$RUNS/LastFM"))
finished_last=$(for run in $new; do [ -e "$RUNS/LastFM/$run/results.json" ] && echo "--exclude=LastFM/$run/last.pt"; done)
tar -czf - -C "$RUNS" $finished_last $(for run in $new; do echo "LastFM/$run"; done) \
    -C "$(dirname "$STUDY")" "$(basename "$STUDY")" | split -b 15m - "$PACK/runs.tgz.part-"
ls -la "$PACK"
