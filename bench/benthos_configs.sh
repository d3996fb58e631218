#!/bin/sh
# Benthos's own configs through `sluice lint`: the YAML files of its config/
# folder (not unit-test definitions nor templates) and the YAML blocks of its
# cookbooks, from Benthos v4.27.0's public source (the Go module cache, as
# bench/bloblang.sh fetches it). Prints each refusal's first error and the
# counts; docs/benthos.md lists why each kind of refusal stands.
# Usage: bench/benthos_configs.sh [BENTHOS_SOURCE_DIR]
set -eu
BIN=${BIN:-build/sluice}
src=${1:-$(go env GOMODCACHE)/github.com/benthosdev/benthos/v4@v4.27.0}
if [ ! -d "$src/config" ]; then
  (cd "$(mktemp -d)" && printf 'module x\n\ngo 1.22\n' > go.mod &&
    GOFLAGS=-mod=mod go mod download github.com/benthosdev/benthos/v4@v4.27.0) || { echo "cannot fetch Benthos" >&2; exit 1; }
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
find "$src/config" -name '*.yaml' ! -name '*_test.yaml' ! -name '*_benthos_test.yaml' ! -path '*template_examples*' \
  | sort > "$work/files"
# cookbook blocks that are whole configs (they have an input, output or pipeline)
for md in "$src"/website/cookbooks/*.md; do
  awk -v base="$work/$(basename "$md" .md)" '
    /^```yaml/ {n++; f=base "_" n ".yaml"; inb=1; next}
    /^```/ && inb {inb=0; close(f); next}
    inb {print > f}' "$md"
done
for f in "$work"/*_*.yaml; do
  [ -f "$f" ] && grep -qE '^(input|output|pipeline|streams):' "$f" && echo "$f" >> "$work/files"
done
pass=0 total=0
while read -r f; do
  total=$((total + 1))
  if out=$("$BIN" lint "$f" 2>&1); then pass=$((pass + 1)); else
    echo "$(echo "$f" | sed "s|$src/||; s|$work/|cookbook |"): $(echo "$out" | head -1 | sed 's|^[^:]*:||')"
  fi
done < "$work/files"
echo "$pass of $total Benthos configs pass sluice lint"
# Benthos's own config unit tests (config/test: *_benthos_test.yaml files
# name their config; others hold tests: inline) through `sluice test`
echo "Benthos's config tests through sluice test: $("$BIN" test "$src/config/test" 2>/dev/null | tail -1)"
