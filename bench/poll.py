#!/usr/bin/env python3
"""Polls a URL every 50 ms until STOPFILE exists; prints requests, failures and the
unavailable window (first to last failure, in ms), and the slowest answer. Bounded:
stops after MAX seconds. TIMEOUT (default 1 s) is how long one request may take:
the edge holds requests while an upstream restarts, so give it more than that."""
import sys, time, os, urllib.request

url, stopfile, max_s = sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 300
timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 1
start = time.monotonic()
total = failed = 0
first = last = None
slowest = 0.0
while not os.path.exists(stopfile) and time.monotonic() - start < max_s:
    t = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            ok = r.status == 200
    except Exception:
        ok = False
    slowest = max(slowest, time.monotonic() - t)
    total += 1
    if not ok:
        failed += 1
        first = t if first is None else first
        last = t
    time.sleep(max(0.0, 0.05 - (time.monotonic() - t)))
window = 0 if first is None else int((last - first) * 1000) + 50
print(f"requests={total} failed={failed} unavailable_ms={window} slowest_ms={int(slowest * 1000)}")
