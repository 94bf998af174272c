#!/usr/bin/env python3
"""Parses the metrics text on stdin with Prometheus' own Python parser (prometheus_client from
PyPI, pinned in tests/hermes-requirements.txt) and prints every sample as one JSON line:
{"name", "labels", "value"}. PARSER=openmetrics uses its OpenMetrics parser instead of the
classic text-format one. Exits 1 with the parser's error if the text does not parse."""

import json
import os
import sys

if os.environ.get("PARSER") == "openmetrics":
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
try:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            print(json.dumps({"name": sample.name, "labels": sample.labels, "value": sample.value}))
except Exception as exc:  # the test shows why
    print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(1)
