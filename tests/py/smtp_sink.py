#!/usr/bin/env python3
"""TEST ONLY: a real SMTP server (aiosmtpd) that stores what it is given.

    smtp_sink.py --listen 0.0.0.0:587 --mode starttls --cert C --key K \
                 --username mas --password-file F --maildir DIR

Modes, as MAS names them (`email.mode`):
  plain     no TLS at all; AUTH is still offered (MAS sends it in the clear).
  starttls  STARTTLS offered with --cert/--key; AUTH and MAIL only after it.
  tls       implicit TLS from the first byte.

AUTH LOGIN and PLAIN are checked against --username and the content of
--password-file (trimmed, as MAS trims `password_file`); a wrong one gets 535.
Without --username no AUTH is required. Each delivered message is written to
DIR/<n>.eml (written to a dot-file, then renamed: a reader never sees half a
message), with the envelope in DIR/<n>.json. One "smtp-sink ready HOST:PORT"
line on stdout when it accepts connections; runs until SIGTERM/SIGINT.
"""

import argparse
import asyncio
import hmac
import itertools
import json
import logging
import os
import signal
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Store:
    def __init__(self, maildir, implicit_tls):
        self.maildir, self.implicit_tls = maildir, implicit_tls
        self.counter = itertools.count(1 + len([n for n in os.listdir(maildir) if n.endswith(".eml")]))

    async def handle_DATA(self, server, session, envelope):
        n = next(self.counter)
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                "tls": self.implicit_tls or session.ssl is not None, "auth": session.authenticated}
        self._write(f"{n}.json", json.dumps(meta).encode())
        self._write(f"{n}.eml", envelope.original_content or envelope.content)
        return "250 OK stored"

    def _write(self, name, data):
        tmp = os.path.join(self.maildir, "." + name)
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.maildir, name))


def authenticator(username, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and hmac.compare_digest(auth_data.login, username.encode())
              and hmac.compare_digest(auth_data.password, password.encode()))
        if not ok:
            print(f"smtp-sink: AUTH {mechanism} refused for {auth_data.login!r}", flush=True)
        return AuthResult(success=ok, handled=False)
    return check


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: any free port)")
    p.add_argument("--mode", choices=["plain", "starttls", "tls"], default="plain")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--username")
    p.add_argument("--password-file")
    p.add_argument("--maildir", required=True)
    a = p.parse_args(argv)
    if a.mode != "plain" and not (a.cert and a.key):
        p.error(f"--mode {a.mode} needs --cert and --key")
    if bool(a.username) != bool(a.password_file):
        p.error("--username and --password-file go together")
    return a


def tls_context(a):
    if a.mode == "plain":
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(a.cert, a.key)
    return ctx


def factory(a):
    ctx = tls_context(a)
    kwargs = {"hostname": "smtp-sink", "ident": "masctl test smtp-sink"}
    if a.username:
        with open(a.password_file, encoding="utf-8") as f:
            password = f.read().strip()
        kwargs.update(authenticator=authenticator(a.username, password), auth_required=True,
                      # Implicit TLS is invisible to aiosmtpd's check; the transport is TLS anyway.
                      auth_require_tls=a.mode == "starttls")
    if a.mode == "starttls":
        kwargs.update(tls_context=ctx, require_starttls=True)
    store = Store(a.maildir, a.mode == "tls")
    return (lambda: SMTP(store, **kwargs)), (ctx if a.mode == "tls" else None)


async def serve(a):
    host, port = a.listen.rsplit(":", 1)
    make, implicit_tls = factory(a)
    server = await asyncio.get_running_loop().create_server(make, host, int(port), ssl=implicit_tls)
    bound = server.sockets[0].getsockname()
    print(f"smtp-sink ready {bound[0]}:{bound[1]} mode {a.mode}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    # Plain mode with AUTH is what the test means to offer (MAS's `mode = "plain"`).
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    warnings.filterwarnings("ignore", message="Session.login_data is deprecated")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    args = parse_args(sys.argv[1:])
    os.makedirs(args.maildir, exist_ok=True)
    asyncio.run(serve(args))
