#!/usr/bin/python3
"""Parses Prometheus text exposition from stdin with the official client's
parser (Debian's python3-prometheus-client) and prints every sample as JSON:
{"name": ..., "labels": {...}, "value": ..., "type": ...} per line. Exits 1
on a parse error."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

try:
    for fam in text_string_to_metric_families(sys.stdin.read()):
        for s in fam.samples:
            print(json.dumps({"name": s.name, "labels": s.labels, "value": s.value, "type": fam.type}))
except Exception as e:  # the parser raises ValueError and friends
    print(json.dumps({"error": str(e)}))
    sys.exit(1)
