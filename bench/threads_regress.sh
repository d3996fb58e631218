#!/bin/sh
# pipeline.threads 1 (the default) on this build against main's: generate → drop
# (20M) and → lua pass-through → drop (5M), interleaved, medians of 5, with CPU.
# Usage: B=<main build>/sluice W=build/sluice bench/threads_regress.sh
B=${B:?main build}; W=${W:-build/sluice}; T=${TMPDIR:-/tmp}
cfg() { # $1 count $2 processors line
cat <<YAML
input:
  generate:
    count: $1
    interval: 0
    batch_size: 1024
    mapping: 'return "{\"user\":\"user-000042\",\"event\":\"page_view\",\"ts\":1700000042,\"ok\":true}"'
max_in_flight: 16
pipeline:
  processors: $2
output:
  drop: {}
YAML
}
cfg 20000000 "[]" > $T/r_drop.yaml
cfg 5000000 "[{lua: 'return nil'}]" > $T/r_pass.yaml
for c in drop pass; do
  n=$([ $c = drop ] && echo 20000000 || echo 5000000)
  : > $T/rb_$c; : > $T/rw_$c
  for i in 1 2 3 4 5; do
    /usr/bin/time -f "%e %U %S" -o $T/t $B run --log-level warn $T/r_$c.yaml >/dev/null; awk -v n=$n '{printf "%.0f %.2f\n", n/$1, $2+$3}' $T/t >> $T/rb_$c
    /usr/bin/time -f "%e %U %S" -o $T/t $W run --log-level warn $T/r_$c.yaml >/dev/null; awk -v n=$n '{printf "%.0f %.2f\n", n/$1, $2+$3}' $T/t >> $T/rw_$c
  done
  med() { sort -n | awk '{a[NR]=$1} END {print a[(NR+1)/2]}'; }
  echo "$c n=$n main: $(awk '{print $1}' $T/rb_$c | med) msg/s cpu $(awk '{print $2}' $T/rb_$c | med) s | branch: $(awk '{print $1}' $T/rw_$c | med) msg/s cpu $(awk '{print $2}' $T/rw_$c | med) s"
done
cut -d' ' -f1-3 /proc/loadavg
