#!/usr/bin/env python3
"""A real appservice (bridge) for the tests, built on the `mautrix` library.

It runs in a container on the stack's Docker network, from masctl's Synapse image
(Debian's Python 3.11) with its packages in a bind-mounted directory:

    docker run --network <instance> --name <bot> -v <dir>:/opt/bot:ro \
      -e PYTHONPATH=/opt/bot/site --entrypoint python3 <synapse image> \
      /opt/bot/bridge_bot.py --config /opt/bot/config.json

`config.json`:
    {"homeserver": "http://masctl-synapse:8008", "domain": "test.local",
     "registration": "/opt/bot/registration.json", "listen": "0.0.0.0:29333",
     "puppet_prefix": "puppet_", "msc4190": false, "device_id": "BRIDGEBOT",
     "double_puppet_token_file": null}

The registration is the file Synapse loads (JSON is YAML); every token is read
from a file, never from the command line or the environment.

What it does:
- registers its bot (`/register` with `inhibit_login`, which is all Synapse allows
  under MAS) and pings itself through Synapse (`/appservice/{id}/ping`);
- joins rooms it is invited to;
- answers each message from a real user with a reply sent by a puppet
  (`@<puppet_prefix><sender localpart>`), invited by the bot when it must be;
- with `msc4190`: creates a device for its bot (`PUT /devices/{id}` as the
  appservice, `user_id` masquerading) and uploads device and one-time keys made by
  libolm (python-olm, through mautrix.crypto's OlmAccount), then checks them with
  `/keys/query`;
- with a double-puppet token: a message `!dp <text>` from a local user is answered
  by `<text>` sent *as that user* (`?user_id=` masquerading with the double-puppet
  registration's as_token).

`GET /_bot/state` (on the listener) reports what happened, for the tests: received
transactions (with whether the hs_token was right and the body's keys), events,
replies, the device and its keys, errors.
"""

import argparse
import asyncio
import json
import logging
import sys
import time

from aiohttp import web

from mautrix.appservice import AppService
from mautrix.appservice.state_store import ASStateStore
from mautrix.client.state_store import MemoryStateStore
from mautrix.errors import MatrixError
from mautrix.types import (
    DeviceID,
    EventType,
    Membership,
    MessageType,
    TextMessageEventContent,
    UserID,
)

log = logging.getLogger("bridge_bot")


class MemoryASStateStore(MemoryStateStore, ASStateStore):
    """mautrix's default state store is a file in the working directory; the
    container's filesystem is read-only for the bot, and a test needs no memory
    across runs."""

    def __init__(self) -> None:
        MemoryStateStore.__init__(self)
        ASStateStore.__init__(self)


def read_secret(path):
    with open(path) as f:
        return f.read().strip()


def localpart(mxid):
    return mxid[1:].split(":", 1)[0]


class State:
    """What the tests read back from `/_bot/state`."""

    def __init__(self):
        self.transactions = []
        self.events = []
        self.replies = {}
        self.double_puppeted = {}
        self.joined = []
        self.ping = None
        self.registered = False
        self.device = None
        self.errors = []

    def as_json(self):
        return dict(self.__dict__)


class Bridge:
    def __init__(self, cfg):
        self.cfg = cfg
        reg = json.load(open(cfg["registration"]))
        self.reg = reg
        self.domain = cfg["domain"]
        self.prefix = cfg.get("puppet_prefix", "puppet_")
        self.state = State()
        dp_file = cfg.get("double_puppet_token_file")
        self.dp_token = read_secret(dp_file) if dp_file else None
        self.az = AppService(
            server=cfg["homeserver"],
            domain=self.domain,
            as_token=reg["as_token"],
            hs_token=reg["hs_token"],
            bot_localpart=reg["sender_localpart"],
            id=reg["id"],
            state_store=MemoryASStateStore(),
            ephemeral_events=bool(reg.get("receive_ephemeral")),
        )
        self.az.matrix_event_handler(self.on_event)
        self.az.app.middlewares.append(self.recorder)
        self.az.app.router.add_get("/_bot/state", self.serve_state)

    @web.middleware
    async def recorder(self, request, handler):
        """Records each transaction Synapse pushes: its id, whether it carried the
        right hs_token, and the keys of its body (MSC2409/MSC3202 extensions)."""
        if "/transactions/" in request.path:
            auth = request.headers.get("Authorization", "")
            body = await request.read()
            try:
                keys = sorted(json.loads(body).keys())
            except ValueError:
                keys = []
            self.state.transactions.append({
                "txn_id": request.path.rsplit("/", 1)[-1],
                "hs_token_ok": auth == "Bearer " + self.reg["hs_token"],
                "keys": keys,
            })
        return await handler(request)

    async def serve_state(self, _request):
        return web.json_response(self.state.as_json())

    def is_ours(self, mxid):
        return mxid == self.az.bot_mxid or localpart(mxid).startswith(self.prefix)

    async def on_event(self, evt):
        try:
            await self.handle(evt)
        except Exception as e:  # recorded for the test, which fails on it
            log.exception("handling %s", evt.event_id)
            self.state.errors.append("%s: %s" % (evt.event_id, e))

    async def handle(self, evt):
        self.state.events.append({"event_id": evt.event_id, "type": str(evt.type), "sender": evt.sender,
                                  "room_id": evt.room_id})
        bot = self.az.intent
        if evt.type == EventType.ROOM_MEMBER:
            if evt.state_key == bot.mxid and evt.content.membership == Membership.INVITE:
                await bot.join_room(evt.room_id)
                self.state.joined.append(evt.room_id)
            return
        if evt.type != EventType.ROOM_MESSAGE or self.is_ours(evt.sender):
            return  # Synapse sends the bridge its own events too
        body = evt.content.body or ""
        if body.startswith("!dp ") and self.dp_token:
            await self.double_puppet(evt, body[4:])
            return
        puppet = bot.user(UserID("@%s%s:%s" % (self.prefix, localpart(evt.sender), self.domain)))
        await puppet.ensure_joined(evt.room_id, bot=bot)
        content = TextMessageEventContent(msgtype=MessageType.NOTICE, body="echo: " + body)
        content.set_reply(evt)
        reply = await puppet.send_message(evt.room_id, content)
        self.state.replies[evt.event_id] = {"event_id": reply, "sender": puppet.mxid}

    async def double_puppet(self, evt, text):
        """Sends `text` as the sender itself, with the double-puppet appservice's
        token: Synapse lets any appservice whose namespace covers a user act as
        it (`user_id` masquerading)."""
        real = self.az.intent.user(evt.sender, token=self.dp_token, as_token=True)
        sent = await real.send_text(evt.room_id, text)
        self.state.double_puppeted[evt.event_id] = {"event_id": sent, "sender": evt.sender}

    async def wait_for_homeserver(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.az.intent.api.request("GET", "/_matrix/client/versions")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1)

    async def make_device(self):
        """MSC4190: the appservice creates its bot's device and uploads its keys,
        with its as_token — no `/login` (which MAS does not offer appservices)."""
        # libolm (python-olm) links libstdc++: imported only here, so the bot runs
        # without it when it makes no device.
        from mautrix.crypto.account import OlmAccount

        bot = self.az.intent
        device_id = DeviceID(self.cfg.get("device_id") or "BRIDGEBOT")
        await bot.create_device_msc4190(device_id, "bridge bot")
        account = OlmAccount()
        device_keys = account.get_device_keys(bot.mxid, device_id)
        otks = account.get_one_time_keys(bot.mxid, device_id, 0)
        counts = await bot.upload_keys(one_time_keys=otks, device_keys=device_keys)
        account.mark_keys_as_published()
        queried = await bot.query_keys([bot.mxid])
        served = queried.device_keys.get(bot.mxid, {}).get(device_id)
        devices = await bot.api.request("GET", "/_matrix/client/v3/devices")
        self.state.device = {
            "device_id": device_id,
            "ed25519": account.identity_keys["ed25519"],
            "served_ed25519": served.ed25519 if served else None,
            "one_time_key_counts": {str(k): v for k, v in counts.items()},
            "listed": sorted(d["device_id"] for d in devices.get("devices", [])),
        }

    async def run(self):
        host, port = self.cfg.get("listen", "0.0.0.0:29333").rsplit(":", 1)
        # Listen first: Synapse marks an appservice down when a push fails.
        await self.az.start(host=host, port=int(port))
        await self.wait_for_homeserver(self.cfg.get("homeserver_timeout", 180))
        await self.az.intent.ensure_registered()  # inhibit_login; M_USER_IN_USE is fine
        self.state.registered = True
        try:
            self.state.ping = await self.az.ping_self()
        except MatrixError as e:
            self.state.errors.append("ping: %s" % e)
        if self.cfg.get("msc4190"):
            try:
                await self.make_device()
            except Exception as e:
                log.exception("creating the bot's device")
                self.state.errors.append("device: %s" % e)
        for room in self.cfg.get("join", []):
            await self.az.intent.join_room(room)
            self.state.joined.append(room)
        log.info("bridge bot ready as %s", self.az.bot_mxid)
        await asyncio.Event().wait()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="the bot's JSON config")
    p.add_argument("--msc4190", "--encrypted", action="store_true",
                   help="create a device for the bot (MSC4190) and upload its keys")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cfg = json.load(open(a.config))
    if a.msc4190:
        cfg["msc4190"] = True
    asyncio.run(serve(cfg))


async def serve(cfg):
    # Built inside the running loop: AppService takes the current loop.
    await Bridge(cfg).run()


if __name__ == "__main__":
    main()
