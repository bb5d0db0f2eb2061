#!/usr/bin/env python3
"""Drives bridge_bot.py from a user's side, with the standard library only, and
exits non-zero unless every step is seen through Synapse:

1. the user creates a private room and invites the bot; the bot joins;
2. the user sends a message; Synapse pushes it to the bridge (with the hs_token)
   and a puppet (`@puppet_<user>`) answers in the room, replying to it;
3. with --double-puppet: the user sends `!dp <text>` and `<text>` appears in the
   room sent as the user by the bridge (not by the user's client);
4. with --msc4190: the bot's device and keys are served by Synapse.

Usage: drive_bridge_bot.py --homeserver URL --token-file FILE --user @alice:hs
       --bot @bridgebot:hs --bot-state URL [--double-puppet] [--msc4190]
The user's access token is read from a file (with --as-user, an appservice token
used with `user_id` masquerading: how to play the user when no MAS runs to log in).
"""

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request


class Client:
    def __init__(self, base, token, as_user=None):
        self.base = base.rstrip("/")
        self.token = token
        # With an appservice token (the double-puppet registration's): act as the user.
        self.query = "user_id=" + urllib.parse.quote(as_user) if as_user else ""
        self.txn = int(time.time() * 1000)

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        if self.query:
            path += ("&" if "?" in path else "?") + self.query
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.token)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    def send(self, room, body):
        self.txn += 1
        path = "/_matrix/client/v3/rooms/%s/send/m.room.message/%d" % (urllib.parse.quote(room), self.txn)
        return self.call("PUT", path, {"msgtype": "m.text", "body": body})["event_id"]

    def messages(self, room):
        path = "/_matrix/client/v3/rooms/%s/messages?dir=b&limit=50" % urllib.parse.quote(room)
        return self.call("GET", path)["chunk"]


def until(what, f, timeout=60):
    """Polls `f` until it returns something truthy (a readiness check, bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = f()
        if v:
            return v
        time.sleep(0.5)
    sys.exit("timed out waiting for " + what)


def bot_state(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--homeserver", required=True)
    p.add_argument("--token-file", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--bot", required=True)
    p.add_argument("--bot-state", required=True)
    p.add_argument("--double-puppet", action="store_true")
    p.add_argument("--msc4190", action="store_true")
    p.add_argument("--as-user", action="store_true",
                   help="the token file holds an appservice token: act as --user with it (MAS on, no MAS to log in)")
    a = p.parse_args()
    c = Client(a.homeserver, open(a.token_file).read().strip(), a.user if a.as_user else None)
    room = c.call("POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat", "invite": [a.bot]})["room_id"]
    until("the bot to join", lambda: room in bot_state(a.bot_state)["joined"])
    sent = c.send(room, "hello bridge")

    def reply():
        for e in c.messages(room):
            rel = e.get("content", {}).get("m.relates_to", {}).get("m.in_reply_to", {})
            if rel.get("event_id") == sent and e["sender"].startswith("@puppet_"):
                return e
        return None

    r = until("the puppet's reply", reply)
    st = bot_state(a.bot_state)
    pushed = [t for t in st["transactions"] if t["hs_token_ok"]]
    assert any(e["event_id"] == sent for e in st["events"]), "the bridge never got the message"
    assert pushed and len(pushed) == len(st["transactions"]), st["transactions"]
    assert st["replies"][sent]["event_id"] == r["event_id"], (st["replies"], r)
    print("puppet reply: %s from %s: %r" % (r["event_id"], r["sender"], r["content"]["body"]))
    if a.double_puppet:
        cmd = c.send(room, "!dp sent by the bridge as me")

        def dp():
            done = bot_state(a.bot_state)["double_puppeted"].get(cmd)
            if not done:
                return None
            return next((e for e in c.messages(room) if e["event_id"] == done["event_id"]), None)

        e = until("the double-puppeted message", dp)
        assert e["sender"] == a.user and e["content"]["body"] == "sent by the bridge as me", e
        print("double puppet: %s from %s: %r" % (e["event_id"], e["sender"], e["content"]["body"]))
    if a.msc4190:
        d = st["device"]
        assert d and d["served_ed25519"] == d["ed25519"] and d["device_id"] in d["listed"], d
        print("msc4190 device %s, ed25519 %s, one-time keys %s" % (d["device_id"], d["ed25519"],
                                                                   d["one_time_key_counts"]))
    assert not st["errors"], st["errors"]
    extension_keys = sorted({k for t in st["transactions"] for k in t["keys"]} - {"events"})
    print("transactions: %d, all with the hs_token; extension keys: %s" % (len(pushed), extension_keys))
    print("OK")


if __name__ == "__main__":
    main()
