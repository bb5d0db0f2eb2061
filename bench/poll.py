#!/usr/bin/env python3
"""Polls a URL every 50 ms until STOPFILE exists; prints requests, failures and the
unavailable window (first to last failure, in ms). Bounded: stops after MAX seconds."""
import sys, time, os, urllib.request

url, stopfile, max_s = sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 300
start = time.monotonic()
total = failed = 0
first = last = None
while not os.path.exists(stopfile) and time.monotonic() - start < max_s:
    t = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            ok = r.status == 200
    except Exception:
        ok = False
    total += 1
    if not ok:
        failed += 1
        first = t if first is None else first
        last = t
    time.sleep(max(0.0, 0.05 - (time.monotonic() - t)))
window = 0 if first is None else int((last - first) * 1000) + 50
print(f"requests={total} failed={failed} unavailable_ms={window}")
