#!/usr/bin/env python3
"""Helpers of scripts/bench (not a test: it prints numbers).

  bench.py gen DIR PREFIX N          N referral Bundles from the Mid Notts
                                     triage fixtures, compact JSON, each with a
                                     UBRN of its own (PREFIX + sequence number)
  bench.py copyfiles DIR BYTEA JSONB the same files as two COPY text-format
                                     inputs: one bytea column, one jsonb column

The HTTP load is tests/bench/bench_http.c (C, libcurl).
"""
import glob
import json
import os
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = {  # fixture -> the UBRN it carries
    "midnotts-accept.json": "100000000301",
    "midnotts-out-of-area.json": "100000000302",
    "midnotts-2ww.json": "100000000303",
    "midnotts-incomplete.json": "100000000304",
}


def gen(out, prefix, n):
    os.makedirs(out, exist_ok=True)
    texts = []
    for name, ubrn in sorted(FIXTURES.items()):
        with open(os.path.join(ROOT, "tests", "fixtures", "triage", name)) as f:
            texts.append((json.dumps(json.load(f), separators=(",", ":")), ubrn))
    width = 12 - len(prefix)
    for i in range(n):
        text, ubrn = texts[i % len(texts)]
        new = prefix + str(i).zfill(width)
        with open(os.path.join(out, "%s.json" % new), "w") as f:
            f.write(text.replace(ubrn, new))


def copyfiles(src, bytea_out, jsonb_out):
    with open(bytea_out, "w") as b, open(jsonb_out, "w") as j:
        for p in sorted(glob.glob(os.path.join(src, "*.json"))):
            with open(p, "rb") as f:
                raw = f.read()
            b.write("\\\\x" + raw.hex() + "\n")
            # COPY text format: backslash is the escape character (compact
            # JSON has no tab or newline outside strings, and escapes them
            # inside strings)
            j.write(raw.decode().replace("\\", "\\\\") + "\n")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "gen":
        gen(args[0], args[1], int(args[2]))
    elif cmd == "copyfiles":
        copyfiles(*args)
    else:
        sys.exit(__doc__)
