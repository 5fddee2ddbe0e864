# The exploratory probe of BENCHMARKS.md "Fifth round" (as run; /tmp paths). The data file is
# committed beside it (L1_seed2103.jsonl); the runs as lambda0/ and own-only/.
set -e
cd /work/main
A=/tmp/amend-rel; S=$HOME/.amend/rectify2; OUT=/tmp/rectify-out5
"$A" rectify train --mistakes "$S" --set own-L1 --located --held-out gsm8k-tail --held-out synth-2102-L1 --held-out synth-2102-L2 --objective logit --token-bias --weight-decay 0.01 --out $OUT/own-only.json --json > $OUT/own-only.summary.json
"$A" data synth --level 1 --n 200 --seed 2103 --out /tmp/probe_L1.jsonl
for l in 0 x; do
  if [ $l = 0 ]; then extra="--lambda 0"; name=lambda0; else extra=""; name=own-only; fi
  "$A" eval --task gsm8k --data /tmp/probe_L1.jsonl --strategy baseline --max-tokens 384 --jobs 4 --rectifier $OUT/own-only.json $extra --out /tmp/probe-$name
done
echo probe done
