#!/bin/sh
# The layering check (docs/architecture.md): fails when a file includes a
# header of a layer above its own, or of a folder beside it that it may not
# use. Run by scripts/test.sh; the linker checks calls the same way (the
# layer_* targets of CMakeLists.txt).
#
# Layers, lowest first: core (the kernel) 0; http 1; store (its backends in
# store/<name>/), obs, cache and clients 2 (cache may use clients); lua 3; processors and connectors/<protocol> 4;
# control 5. A file includes headers of its own folder by file name, others
# by their path from the top ("core/msg.h"), and only of a lower layer or of
# a folder that RULES below lets it use. spec/ and cmake/ may use anything.
set -u
cd "$(dirname "$0")/.."
# shellcheck disable=SC2046
awk '
  function rank(d) {
    if (d == "core") return 0
    if (d == "http") return 1
    if (d == "store" || d ~ /^store\// || d == "obs" || d == "cache" || d == "clients") return 2
    if (d == "lua") return 3
    if (d == "processors" || d ~ /^connectors\//) return 4
    if (d == "control") return 5
    return -1
  }
  # Folders of one layer that use another of the same layer: a backend uses
  # the store interface; the stream connectors build a kafka input on
  # store.backend kafka; caches use the clients (a redis cache).
  function allowed(from, to) {
    if (from == to || rank(to) < rank(from)) return 1
    if (from ~ /^store\// && to == "store") return 1
    if (from == "connectors/stream" && to == "connectors/kafka") return 1
    if (from == "cache" && to == "clients") return 1
    return 0
  }
  FNR == 1 {
    files++
    dir = FILENAME; sub(/\/[^\/]*$/, "", dir)
    if (rank(dir) < 0) { printf "%s: folder %s has no layer (scripts/layers.sh)\n", FILENAME, dir; bad++ }
  }
  /^[ \t]*#[ \t]*include[ \t]*"/ {
    inc = $0; sub(/^[^"]*"/, "", inc); sub(/".*$/, "", inc)
    n++
    if (inc !~ /\//) {
      if (system("test -f " dir "/" inc) != 0) {
        printf "%s:%d: \"%s\" is not in %s/: name its folder\n", FILENAME, FNR, inc, dir; bad++
      }
      next
    }
    to = inc; sub(/\/[^\/]*$/, "", to)
    if (rank(to) < 0) { printf "%s:%d: \"%s\" is in no layer\n", FILENAME, FNR, inc; bad++; next }
    if (!allowed(dir, to)) {
      printf "%s:%d: %s (layer %d) includes \"%s\" (%s, layer %d)\n", FILENAME, FNR, dir, rank(dir), inc, to, rank(to)
      bad++
    }
  }
  END {
    if (bad) { printf "layering: %d problem(s) in %d files\n", bad, files; exit 1 }
    printf "layering: %d files, %d includes, none upward\n", files, n
  }' $(find core http store obs clients cache lua processors connectors control -name '*.[ch]' | sort)
