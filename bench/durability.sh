#!/bin/bash
# What a crash costs per fsync setting: one client publishes one event at a
# time (spec/tools/publisher.py) and prints every acknowledged offset; after
# N acknowledgements sluice is killed with -9 while the client goes on, then
# started again and asked which acknowledged events it still has. "kill -9"
# rows restart as is (the kernel keeps what was written); "power cut" rows
# restart with SLUICE_TEST_POWER_LOSS=1, which first cuts every partition
# back to what its last fsync covered (docs/durability.md).
# Then a full disk (a 1 MiB tmpfs, so run as root): a batch of 4 events, 2
# small ones to partition 0 and 2 of 30 KB to partition 1, with 16 KiB free.
# Usage: bench/durability.sh [N]   (prints Markdown rows; N=0: the disk only)
set -eu
cd "$(dirname "$0")/.."
N=${1:-2000}
BIN=$(realpath "${SLUICE_BIN:-build/sluice}")
PORT=18091
WORK=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null || true; umount "$WORK/data" 2>/dev/null || true; rm -rf "$WORK"' EXIT
trap 'exit 1' INT TERM   # so that a killed run still cleans up (EXIT)
cat > "$WORK/c.yaml" <<YAML
http: {address: 127.0.0.1:$PORT}
store: {data_dir: ./data}
input: {generate: {interval: 1h, mapping: 'return 1'}}
output: {drop: {}}
YAML
up() {
  (cd "$WORK" && exec env $1 "$BIN" run --log-level warn c.yaml 2>> "$WORK/err.txt") & pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "localhost:$PORT/ping" && return; sleep 0.05; done
  echo "sluice did not start: $(cat "$WORK/err.txt")" >&2; exit 1
}
[ "$N" -gt 0 ] && echo "| fsync | crash | acknowledged | still there after the restart | lost |" &&
  echo "| --- | --- | --- | --- | --- |"
for crash in "kill -9" "power cut"; do
  [ "$N" -gt 0 ] || break
  env=$([ "$crash" = "power cut" ] && echo SLUICE_TEST_POWER_LOSS=1 || true)
  for fsync in always interval never; do
    rm -rf "$WORK/data"
    up "$env"
    curl -s -X POST "localhost:$PORT/stream/d" -d "{\"fsync\":\"$fsync\",\"segment_bytes\":1073741824}" > /dev/null
    acked=0
    while read -r off n; do
      echo "$off" >> "$WORK/acked"
      acked=$((acked + 1))
      [ $acked -eq "$N" ] && kill -9 $pid
    done < <(python3 spec/tools/publisher.py "http://127.0.0.1:$PORT/stream/d/publish" 10000000)
    wait $pid 2>/dev/null || true
    up "$env"
    have=$(curl -s "localhost:$PORT/stream/d/info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["message_count"])')
    kept=$(awk -v h="$have" '$1 < h' "$WORK/acked" | wc -l)
    echo "| $fsync | $crash | $acked | $kept | $((acked - kept)) |"
    kill $pid; wait $pid 2>/dev/null || true
    rm -f "$WORK/acked"
  done
done

echo
echo "| disk full | answer | events kept of the batch | after room was made |"
echo "| --- | --- | --- | --- |"
rm -rf "$WORK/data"
mkdir "$WORK/data"
mount -t tmpfs -o size=1m tmpfs "$WORK/data"
up ""
curl -s -X POST "localhost:$PORT/stream/full" -d '{"partitions":2}' > /dev/null
dd if=/dev/zero of="$WORK/data/filler" bs=4k 2> /dev/null || true
truncate -s -16k "$WORK/data/filler"
# partition_key "a" goes to partition 0, "d" to partition 1
python3 -c 'import json; b="x"*30000; print(json.dumps({"events":[{"data":"s1","partition_key":"a"},{"data":"s2","partition_key":"a"},{"data":b,"partition_key":"d"},{"data":b,"partition_key":"d"}]}))' > "$WORK/batch.json"
answer=$(curl -s -w ' %{http_code}' "localhost:$PORT/stream/full/publish" --data-binary @"$WORK/batch.json")
kept=$(curl -s "localhost:$PORT/stream/full/info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["message_count"])')
rm "$WORK/data/filler"
again=$(curl -s -o /dev/null -w '%{http_code}' "localhost:$PORT/stream/full/publish" --data-binary @"$WORK/batch.json")
echo "| 4 events over 2 partitions | \`$answer\` | $kept | $again |"
kill $pid; wait $pid 2>/dev/null || true
