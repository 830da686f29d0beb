#!/usr/bin/env python3
"""Helpers of scripts/bench (not a test: it prints numbers).

  bench.py gen DIR PREFIX N          N referral Bundles from the Mid Notts
                                     triage fixtures, compact JSON, each with a
                                     UBRN of its own (PREFIX + sequence number)
  bench.py copyfiles DIR BYTEA JSONB the same files as two COPY text-format
                                     inputs: one bytea column, one jsonb column
  bench.py http HOST:PORT TOKEN CLIENTS SERVICE DIR
                                     POST every file of DIR to /fhir/Bundle with
                                     CLIENTS concurrent keep-alive connections;
                                     prints "ok FAILED SECONDS"
"""
import glob
import json
import os
import socket
import sys
import threading
import time

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


def http(addr, token, clients, service, src):
    host, port = addr.rsplit(":", 1)
    files = sorted(glob.glob(os.path.join(src, "*.json")))
    reqs = []
    for p in files:
        with open(p, "rb") as f:
            body = f.read()
        head = ("POST /fhir/Bundle?service=%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/fhir+json\r\nContent-Length: %d\r\n\r\n"
                % (service, addr, token, len(body))).encode()
        reqs.append(head + body)
    lock = threading.Lock()
    nxt = [0]
    ok = [0]
    bad = [0]

    def worker():
        s = socket.create_connection((host, int(port)))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = s.makefile("rb")
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= len(reqs):
                break
            s.sendall(reqs[i])
            status = int(f.readline().split()[1])
            length = 0
            close = False
            while True:
                line = f.readline()
                if line in (b"\r\n", b""):
                    break
                k, _, v = line.decode().partition(":")
                if k.lower() == "content-length":
                    length = int(v)
                elif k.lower() == "connection" and "close" in v.lower():
                    close = True
            f.read(length)
            with lock:
                if 200 <= status < 300:
                    ok[0] += 1
                else:
                    bad[0] += 1
                    if bad[0] <= 3:
                        print("bench: HTTP %d for %s" % (status, files[i]), file=sys.stderr)
            if close:
                s.close()
                s = socket.create_connection((host, int(port)))
                f = s.makefile("rb")
        s.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("%d %d %.3f" % (ok[0], bad[0], time.monotonic() - t0))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "gen":
        gen(args[0], args[1], int(args[2]))
    elif cmd == "copyfiles":
        copyfiles(*args)
    elif cmd == "http":
        http(args[0], args[1], int(args[2]), args[3], args[4])
    else:
        sys.exit(__doc__)
