#!/usr/bin/env python3
"""Real Matrix clients against BASE_URL: N users log in (password PW, users
loadN), all join one room, then for SECONDS each sends messages back to back in
one thread and long-polls /sync in another. Prints sends/s and /sync responses/s
over the whole window (warm-up excluded), and failures. Standard library only."""
import json, sys, threading, time, urllib.request

base, n, seconds, pw = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]


def call(method, path, body=None, token=None, timeout=60):
    req = urllib.request.Request(base + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


tokens = []
for i in range(n):
    login = {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": f"load{i}"}, "password": pw}
    tokens.append(call("POST", "/_matrix/client/v3/login", login)["access_token"])
room = call("POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, tokens[0])["room_id"]
for t in tokens[1:]:
    call("POST", f"/_matrix/client/v3/join/{room}", {}, t)

stop = threading.Event()
counts = {"send": 0, "sync": 0, "fail": 0}
lock = threading.Lock()


def bump(k):
    with lock:
        counts[k] += 1


def sender(i, t):
    k = 0
    while not stop.is_set():
        k += 1
        try:
            call("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/b{i}-{k}",
                 {"msgtype": "m.text", "body": f"message {k} from {i}"}, t)
            bump("send")
        except Exception:
            bump("fail")


def syncer(t):
    since = call("GET", "/_matrix/client/v3/sync?timeout=0", token=t)["next_batch"]
    while not stop.is_set():
        try:
            since = call("GET", f"/_matrix/client/v3/sync?timeout=10000&since={since}", token=t)["next_batch"]
            bump("sync")
        except Exception:
            bump("fail")


threads = [threading.Thread(target=f, args=a, daemon=True)
           for i, t in enumerate(tokens) for f, a in ((sender, (i, t)), (syncer, (t,)))]
for th in threads:
    th.start()
time.sleep(5)  # warm-up
with lock:
    c0 = dict(counts)
t0 = time.monotonic()
time.sleep(seconds)
with lock:
    c1 = dict(counts)
dt = time.monotonic() - t0
stop.set()
print(f"sends_per_s={(c1['send'] - c0['send']) / dt:.1f} syncs_per_s={(c1['sync'] - c0['sync']) / dt:.1f} "
      f"failures={c1['fail'] - c0['fail']}")
