#!/usr/bin/env python3
"""TEST ONLY: a real Matrix client library (matrix-nio) reading a restored server.

  nio_client.py --base URL --user U --password-file F --room ROOM_ID
                --message TEXT --media MXC

Logs in with the password (read from a file, never argv), syncs, finds TEXT in
the room's timeline and downloads MXC through the client's own session. Prints
one JSON object: what it found.
"""

import argparse
import asyncio
import json

from nio import AsyncClient, DownloadError, LoginResponse, SyncResponse


async def main(a):
    password = open(a.password_file).read().strip()
    client = AsyncClient(a.base, a.user)
    out = {"logged_in": False, "message_found": False, "media_bytes": None}
    try:
        login = await client.login(password, device_name="disaster-test")
        if not isinstance(login, LoginResponse):
            out["error"] = f"login: {login}"
            return out
        out["logged_in"] = True
        out["user_id"] = login.user_id
        sync = await client.sync(timeout=0, full_state=True)
        if not isinstance(sync, SyncResponse):
            out["error"] = f"sync: {sync}"
            return out
        room = sync.rooms.join.get(a.room)
        bodies = [getattr(e, "body", None) for e in (room.timeline.events if room else [])]
        out["message_found"] = a.message in bodies
        server, media_id = a.media.removeprefix("mxc://").split("/", 1)
        # Synapse serves new media only to authenticated clients (/_matrix/client/v1).
        url = f"{a.base}/_matrix/client/v1/media/download/{server}/{media_id}"
        async with client.client_session.get(
            url, headers={"Authorization": f"Bearer {client.access_token}"}
        ) as r:
            out["media_status"] = r.status
            if r.status == 200:
                out["media_bytes"] = (await r.read()).hex()
        if out["media_bytes"] is None:
            d = await client.download(server_name=server, media_id=media_id)
            if not isinstance(d, DownloadError):
                out["media_bytes"] = d.body.hex()
        return out
    finally:
        await client.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    for flag in ["--base", "--user", "--password-file", "--room", "--message", "--media"]:
        p.add_argument(flag, required=True)
    print(json.dumps(asyncio.run(main(p.parse_args()))))
