#!/usr/bin/env python3
"""TEST ONLY: a real browser (Debian's chromium through Playwright) signing in
through an upstream OpenID provider, through Synapse's own OIDC, and through
MAS's email pages.

The browser trusts the test CA the way a person's would: the CA is added as a
trust anchor to an NSS database under a fresh HOME ($HOME/.pki/nssdb, which
Chromium on Linux reads), with certutil from libnss3-tools. No TLS error is
ignored: a certificate that does not chain to that CA fails the page.

Each subcommand prints one JSON object on stdout. Passwords come from files,
never from argv or the environment:

  idp       --issuer URL --client-id ID --redirect-uri URI --user U --password-file F
            the IdP alone: /auth → its login + consent → redirect_uri?code=…
  mas       --auth-url URL --redirect-uri URI --provider NAME --user U --password-file F
            MAS login page → the provider's button → IdP → MAS's registration
            (imported localpart, display name, email) → MAS consent → redirect_uri?code=…
  mas-session --mas ISSUER --provider NAME --user U --password-file F
            a Matrix client's sign-in through MAS and the provider: MAS's discovery,
            dynamic registration of a native public client, authorization code +
            PKCE S256 in the browser (as `mas`), the token exchange; prints the
            access token, its device and what MAS's registration page imported
  synapse   --synapse URL --idp-id ID --user U --password-file F [--localpart L]
            Synapse's /login/sso/redirect/oidc-<ID> → IdP → (username picker) →
            loginToken → m.login.token; prints user_id, device_id
  register-email --mas URL --username U --email E --password-file F --maildir D
            /register/password with an email → the 6-digit code from the mail → done
  recover   --mas URL --email E --new-password-file F --maildir D
            /recover → the link from the mail → the new password set

Common: --ca PEM (the test CA), --resolve HOST=IP (repeatable: names on the
Docker network, which the host's resolver does not know), --screenshots DIR.
"""

import argparse
import base64
import contextlib
import email
import email.policy
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 30_000


# What Chromium says when it aborts a navigation because the host's interfaces
# changed under it (other tests' Docker networks and containers coming and going).
NETWORK_CHANGED = ("ERR_NETWORK_CHANGED", 'another navigation to "chrome-error://')


def goto(page, url, attempts=5):
    """page.goto, made again when Chromium aborts it for a network change; any
    other failure is raised at once."""
    for attempt in range(attempts):
        try:
            return page.goto(url)
        except Exception as exc:
            if not any(n in str(exc) for n in NETWORK_CHANGED) or attempt == attempts - 1:
                raise


def read_secret(path):
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def nss_trusting(home, ca_pem):
    """An NSS database under HOME whose only added anchor is the test CA."""
    db = os.path.join(home, ".pki", "nssdb")
    os.makedirs(db, mode=0o700)
    subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{db}", "-n", "masctl-test-ca", "-t", "C,,", "-i", ca_pem], check=True)


@contextlib.contextmanager
def browser(args):
    """A fresh headless Chromium (new HOME and user-data-dir); yields a page."""
    work = tempfile.mkdtemp(prefix="masctl-browser-")
    try:
        home, profile = os.path.join(work, "home"), os.path.join(work, "profile")
        os.makedirs(home)
        nss_trusting(home, args.ca)
        flags = list(FLAGS)
        if args.resolve:
            rules = ", ".join(f"MAP {h} {ip}" for h, ip in (r.split("=", 1) for r in args.resolve))
            flags.append(f"--host-resolver-rules={rules}")
        env = {"HOME": home, "PATH": "/usr/bin:/bin"}
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                       args=flags, env=env)
            ctx.set_default_timeout(TIMEOUT_MS)
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            try:
                yield page
            except Exception:
                shot(page, args, "failure")
                raise
            finally:
                ctx.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def shot(page, args, name):
    if args.screenshots:
        os.makedirs(args.screenshots, exist_ok=True)
        with contextlib.suppress(Exception):
            page.screenshot(path=os.path.join(args.screenshots, f"{name}.png"), full_page=True)


def capture_redirect(page, prefix):
    """Stops the browser at the first request to `prefix` (the client's redirect
    URI: nothing listens there) and returns its full URL."""
    seen = []

    def handler(route):
        seen.append(route.request.url)
        route.fulfill(status=200, content_type="text/plain", body="redirect captured")

    page.route(lambda url: url.startswith(prefix), handler)
    return seen


def wait_until(page, what, check, limit=TIMEOUT_MS / 1000):
    """Polls `check` (a readiness check, bounded); waiting through the page lets
    Playwright run its route handlers meanwhile."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        v = check()
        if v:
            return v
        page.wait_for_timeout(100)
    raise TimeoutError(f"timed out waiting for {what}")


def idp_sign_in(page, user, password):
    """The test IdP's own pages (tests/idp/idp.mjs): login, then consent."""
    page.wait_for_selector("#login")
    page.fill("#login", user)
    page.fill("#password", password)
    page.click("#sign-in")
    page.wait_for_load_state()
    if page.locator("#error").count():
        raise RuntimeError(f"the IdP refused the login: {page.inner_text('#error')}")
    page.wait_for_selector("#allow").click()


def query_of(url):
    return {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).items()}


def cmd_idp(page, args):
    seen = capture_redirect(page, args.redirect_uri)
    state = secrets.token_urlsafe(12)
    q = urllib.parse.urlencode({"client_id": args.client_id, "redirect_uri": args.redirect_uri,
                                "response_type": "code", "scope": "openid email profile", "state": state})
    goto(page, f"{args.issuer}/auth?{q}")
    idp_sign_in(page, args.user, read_secret(args.password_file))
    url = wait_until(page, "the redirect to the client", lambda: seen and seen[0])
    got = query_of(url)
    if got.get("state") != state:
        raise RuntimeError(f"state mismatch in {url}")
    return {"redirect": url, "code": got["code"], "iss": got.get("iss")}


def mas_register_upstream(page):
    """MAS's /upstream/link/… page for a new account: what it imported, then submit."""
    page.wait_for_selector("form input[name=action][value=register]", state="attached")
    imported = {}
    for field in ("mxid", "username", "email", "display_name"):
        loc = page.locator(f"form input[name={field}]")
        if loc.count():
            imported[field] = loc.first.input_value()
    terms = page.locator("input[name=accept_terms]")
    if terms.count():
        terms.check()
    page.locator("form:has(input[name=action][value=register]) button[type=submit]").click()
    return imported


def mas_consent(page):
    page.wait_for_url(re.compile(r"/consent/"))
    page.locator("form button[type=submit]").first.click()


def cmd_mas(page, args):
    seen = capture_redirect(page, args.redirect_uri)
    goto(page, args.auth_url)
    page.wait_for_url(re.compile(r"/login"))
    link = page.locator("a[href*='/upstream/authorize/']", has_text=args.provider)
    if not link.count():
        raise RuntimeError(f"MAS's login page shows no button for provider {args.provider!r}")
    link.first.click()
    idp_sign_in(page, args.user, read_secret(args.password_file))
    page.wait_for_url(re.compile(r"/upstream/link/|/consent/"))
    imported = mas_register_upstream(page) if "/upstream/link/" in page.url else {}
    mas_consent(page)
    url = wait_until(page, "MAS's redirect to the client", lambda: seen and seen[0])
    return {"redirect": url, "code": query_of(url).get("code"), "state": query_of(url).get("state"),
            "imported": imported}


API_SCOPE = "urn:matrix:org.matrix.msc2967.client:api:*"
DEVICE_SCOPE = "urn:matrix:org.matrix.msc2967.client:device:"


def install_resolver(resolve):
    """`--resolve HOST=IP` for this script's own HTTP requests (urllib)."""
    mapping = dict(r.split("=", 1) for r in resolve)
    real = socket.getaddrinfo

    def getaddrinfo(host, *a, **kw):
        return real(mapping.get(host, host), *a, **kw)
    socket.getaddrinfo = getaddrinfo


def fetch_json(args, url, data=None, form=None):
    """GET (or POST JSON `data` / a `form`) over TLS verified against the test CA only."""
    ctx = ssl.create_default_context(cafile=args.ca)
    headers, body = {"Accept": "application/json"}, None
    if data is not None:
        headers["Content-Type"], body = "application/json", json.dumps(data).encode()
    elif form is not None:
        headers["Content-Type"], body = "application/x-www-form-urlencoded", urllib.parse.urlencode(form).encode()
    req = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{url}: {e.code} {e.read()[:300]!r}") from None


def cmd_mas_session(page, args):
    meta = fetch_json(args, args.mas.rstrip("/") + "/.well-known/openid-configuration")
    redirect = "http://127.0.0.1/callback"
    client = fetch_json(args, meta["registration_endpoint"], data={
        "application_type": "native", "client_name": "masctl sso test", "client_uri": args.client_uri,
        "redirect_uris": [redirect], "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"], "token_endpoint_auth_method": "none"})
    device = "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(12))
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state = secrets.token_urlsafe(12)
    q = urllib.parse.urlencode({"response_type": "code", "client_id": client["client_id"], "redirect_uri": redirect,
                                "scope": f"openid {API_SCOPE} {DEVICE_SCOPE}{device}", "state": state,
                                "code_challenge": challenge, "code_challenge_method": "S256"})
    sub = argparse.Namespace(auth_url=f"{meta['authorization_endpoint']}?{q}", redirect_uri=redirect,
                             provider=args.provider, user=args.user, password_file=args.password_file)
    got = cmd_mas(page, sub)
    if got["state"] != state or not got["code"]:
        raise RuntimeError(f"MAS's redirect: {got['redirect']}")
    token = fetch_json(args, meta["token_endpoint"], form={
        "grant_type": "authorization_code", "code": got["code"], "redirect_uri": redirect,
        "client_id": client["client_id"], "code_verifier": verifier})
    return {"access_token": token["access_token"], "device_id": device, "imported": got["imported"],
            "landed_on_link_page": bool(got["imported"])}


def synapse_pick_username(page, localpart):
    """Synapse's username picker (only when its mapping gives no localpart)."""
    page.fill("input[name=username]", localpart)
    page.locator("form input[type=submit], form button[type=submit]").first.click()


def cmd_synapse(page, args):
    redirect = "http://client.invalid/done"
    seen = capture_redirect(page, redirect)
    q = urllib.parse.urlencode({"redirectUrl": redirect})
    goto(page, f"{args.synapse}/_matrix/client/v3/login/sso/redirect/oidc-{args.idp_id}?{q}")
    idp_sign_in(page, args.user, read_secret(args.password_file))
    # Back at Synapse: maybe the picker, maybe the "continue to your client" page.
    page.wait_for_load_state()
    if not seen and "/pick_username/" in page.url:
        synapse_pick_username(page, args.localpart or args.user)
    if not seen:
        cont = page.locator(f"a[href^='{redirect}']")
        with contextlib.suppress(Exception):
            cont.first.wait_for(timeout=5000)
            cont.first.click()
    url = wait_until(page, "Synapse's redirect with a loginToken", lambda: seen and seen[0])
    token = query_of(url)["loginToken"]
    body = json.dumps({"type": "m.login.token", "token": token}).encode()
    req = urllib.request.Request(f"{args.synapse}/_matrix/client/v3/login", data=body,
                                 headers={"Content-Type": "application/json"})
    ctx = ssl.create_default_context(cafile=args.ca)
    with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
        login = json.load(r)
    return {"user_id": login["user_id"], "device_id": login["device_id"], "access_token": login["access_token"]}


def mails(maildir):
    return sorted((n for n in os.listdir(maildir) if n.endswith(".eml")), key=lambda n: int(n[:-4]))


def next_mail(page, maildir, before, to):
    """The first message delivered after `before` (a list of names) to `to`."""
    def check():
        for name in mails(maildir):
            if name in before:
                continue
            with open(os.path.join(maildir, name), "rb") as f:
                msg = email.message_from_binary_file(f, policy=email.policy.default)
            if to.lower() in str(msg["To"]).lower():
                return msg
        return None
    return wait_until(page, f"a mail to {to} in {maildir}", check)


def text_of(msg):
    part = msg.get_body(preferencelist=("plain", "html"))
    return part.get_content() if part else ""


def code_in(msg):
    m = re.search(r"\b(\d{6})\b", text_of(msg)) or re.search(r"\b(\d{6})\b", str(msg["Subject"]))
    if not m:
        raise RuntimeError(f"no 6-digit code in the mail {msg['Subject']!r}")
    return m.group(1)


def submit_registration(page, args, password):
    """The password registration form, up to /verify-email. A submission Chromium
    aborts with ERR_NETWORK_CHANGED (other tests' Docker networks changing the
    host's interfaces) is made again from the start, up to three times; any other
    page fails. Returns the mails there were before the submission that got through."""
    for attempt in range(3):
        before = mails(args.maildir)
        goto(page, f"{args.mas}/register/password")
        page.fill("input[name=username]", args.username)
        page.fill("input[name=email]", args.email)
        page.fill("input[name=password]", password)
        page.fill("input[name=password_confirm]", password)
        terms = page.locator("input[name=accept_terms]")
        if terms.count():
            terms.check()
        page.locator("form button[type=submit]").first.click()
        try:
            page.wait_for_url(lambda url: "/verify-email" in url or url.startswith("chrome-error:"))
        except PlaywrightTimeout:
            pass
        if "/verify-email" in page.url:
            return before
        # Say what MAS showed instead (a refused form stays on /register/password).
        body = " ".join(page.inner_text("body").split())[:400]
        if "ERR_NETWORK_CHANGED" not in body or attempt == 2:
            raise RuntimeError(f"registration did not reach verify-email: {page.url}: {body}")
    raise AssertionError("unreachable")


def cmd_register_email(page, args):
    password = read_secret(args.password_file)
    before = submit_registration(page, args, password)
    code = code_in(next_mail(page, args.maildir, before, args.email))
    # A wrong code first: MAS shows the form again, no step further.
    wrong = "%06d" % ((int(code) + 1) % 1_000_000)
    page.fill("input[name=code]", wrong)
    page.locator("form button[type=submit]").first.click()
    page.wait_for_load_state()
    if "/verify-email" not in page.url or not page.locator("input[name=code]").count():
        raise RuntimeError(f"a wrong code was not refused: {page.url}")
    page.fill("input[name=code]", code)
    page.locator("form button[type=submit]").first.click()
    page.wait_for_url(lambda url: "/verify-email" not in url)
    # MAS's next step asks for a display name; then the registration finishes.
    display = None
    if "/register/steps/" in page.url and page.locator("input[name=display_name]").count():
        display = f"Display {args.username}"
        page.fill("input[name=display_name]", display)
        page.locator("form:has([name=display_name]) button[type=submit]").first.click()
        page.wait_for_url(lambda url: "/register/" not in url)
    return {"code": code, "wrong_code_refused": True, "display_name": display, "landed": page.url}


def cmd_recover(page, args):
    before = mails(args.maildir)
    goto(page, f"{args.mas}/recover")
    page.fill("input[name=email]", args.email)
    page.locator("form button[type=submit]").first.click()
    page.wait_for_load_state()
    msg = next_mail(page, args.maildir, before, args.email)
    link = re.search(r"https?://\S+/account/password/recovery\?ticket=[A-Za-z0-9]+", text_of(msg))
    if not link:
        raise RuntimeError(f"no recovery link in the mail {msg['Subject']!r}")
    # MAS's recovery page is its account app (JavaScript): say what it logged or
    # failed to fetch when the form does not appear.
    trouble = []
    page.on("console", lambda m: trouble.append(f"console {m.type}: {m.text}"))
    page.on("requestfailed", lambda r: trouble.append(f"failed {r.url}: {r.failure}"))
    page.on("response", lambda r: r.status >= 400 and trouble.append(f"{r.status} {r.url}"))
    goto(page, link.group(0))
    password = read_secret(args.new_password_file)
    try:
        page.wait_for_selector("input[name=new_password]")
    except PlaywrightTimeout:
        body = " ".join(page.inner_text("body").split())[:400]
        raise RuntimeError(f"no new-password form at {page.url}: {body!r}; {trouble[:12]}") from None
    page.fill("input[name=new_password]", password)
    page.fill("input[name=new_password_again]", password)
    page.locator("form button[type=submit]").first.click()
    page.wait_for_url(lambda url: "/account/password/recovery" not in url)
    return {"link_host": urllib.parse.urlsplit(link.group(0)).netloc, "landed": page.url}


COMMANDS = {"idp": cmd_idp, "mas": cmd_mas, "mas-session": cmd_mas_session, "synapse": cmd_synapse, "register-email": cmd_register_email,
            "recover": cmd_recover}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ca", required=True)
    p.add_argument("--resolve", action="append", default=[], metavar="HOST=IP")
    p.add_argument("--screenshots")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("idp")
    for a in ("--issuer", "--client-id", "--redirect-uri", "--user", "--password-file"):
        s.add_argument(a, required=True)
    s = sub.add_parser("mas")
    for a in ("--auth-url", "--redirect-uri", "--provider", "--user", "--password-file"):
        s.add_argument(a, required=True)
    s = sub.add_parser("mas-session")
    for a in ("--mas", "--provider", "--user", "--password-file"):
        s.add_argument(a, required=True)
    s.add_argument("--client-uri", default="https://client.masctl-test.org/")
    s = sub.add_parser("synapse")
    for a in ("--synapse", "--idp-id", "--user", "--password-file"):
        s.add_argument(a, required=True)
    s.add_argument("--localpart")
    s = sub.add_parser("register-email")
    for a in ("--mas", "--username", "--email", "--password-file", "--maildir"):
        s.add_argument(a, required=True)
    s = sub.add_parser("recover")
    for a in ("--mas", "--email", "--new-password-file", "--maildir"):
        s.add_argument(a, required=True)
    return p.parse_args(argv)


def main(argv):
    args = parse_args(argv)
    install_resolver(args.resolve)
    with browser(args) as page:
        result = COMMANDS[args.command](page, args)
        shot(page, args, args.command)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
