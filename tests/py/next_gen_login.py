#!/usr/bin/env python3
"""The sign-in Element X does (OAuth 2.0 through MAS, MSC3861 and the MSCs around
it), driven against a deployed homeserver over TLS, every step asserted.

Prints one JSON object on stdout: {"ok": true|false, "mode": ..., "steps": [...],
"error": ...}. Exit status 0 when every assertion held, 1 otherwise.

The protocol side is authlib's OAuth 2.0 client; MAS's login, registration and
consent pages are filled by Debian's chromium through Playwright.

Modes:
  login     discovery, registration, authorization code + PKCE S256 in the browser,
            token, whoami, /sync, refresh, revocation, the old token refused
  register  the same with prompt=create: a new account made on MAS's /register page
  device    QR login's rendezvous (MSC4108) created and read back through the edge,
            then the device authorization grant (RFC 8628): the browser types the
            user code at /link and consents
  negative  refusals: a registration MAS's policy refuses, a wrong PKCE verifier,
            a reused code, a revoked token
"""

import argparse
import json
import os
import secrets
import shutil
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.parse

import requests
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

API_SCOPE = "urn:matrix:org.matrix.msc2967.client:api:*"
DEVICE_SCOPE = "urn:matrix:org.matrix.msc2967.client:device:"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# What each page of MAS's flow shows (real MAS and the stand-in alike): waits are
# on these, never on the URL, which lags the content while a redirect commits.
LOGIN_FORM = "form:has([name=csrf]):has([name=password])"
CONSENT_FORM = ("form:has([name=csrf]):not(:has([name=password])):not(:has([name=username]))"
                ":not(:has([name=code])):not(:has([name=confirm_device])):not(:has([name=action]))")
# MAS's registration step after the password form (register/steps/{id}/display-name)
DISPLAY_NAME_FORM = "form:has([name=csrf]):has([name=display_name])"
DEVICE_CONSENT_FORM = "form:has([name=csrf]):has([name=confirm_device])"


class Failed(Exception):
    pass


class Secrets:
    """Every token the run obtains, one a line in a 0600 file the test scans for
    (command lines, units, docker inspect, the journal)."""

    def __init__(self, path):
        self.path = path
        if path:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))

    def add(self, *values):
        if self.path:
            with open(self.path, "a", encoding="utf-8") as f:
                f.writelines(v + "\n" for v in values if v)


SECRETS = [Secrets(None)]


class Run:
    """The steps done so far; each assertion names what it compared."""

    def __init__(self, mode):
        self.mode = mode
        self.steps = []

    def step(self, name, **facts):
        self.steps.append(dict(step=name, **facts))

    def check(self, cond, what, **facts):
        if not cond:
            raise Failed("%s: %s" % (what, json.dumps(facts, default=str)))


# ---- name resolution: the stack's names are Docker aliases, not DNS --------
def install_resolver(mapping):
    """`--resolve host=ip` for Python's sockets (requests, authlib)."""
    if not mapping:
        return
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        return real(mapping.get(host, host), *args, **kwargs)
    socket.getaddrinfo = getaddrinfo


# ---- HTTP --------------------------------------------------------------------
def http(args):
    s = requests.Session()
    # REQUESTS_CA_BUNDLE (set on this machine) would silently replace `verify`.
    s.trust_env = False
    s.verify = args.ca_file
    s.headers["User-Agent"] = "masctl-next-gen-login-test"
    return s


def get_json(s, url, run, what, status=200, token=None):
    headers = {"Authorization": "Bearer " + token} if token else {}
    r = s.get(url, headers=headers, timeout=30)
    try:
        body = r.json()
    except ValueError:
        body = r.text[:300]
    run.check(r.status_code == status, "%s: GET %s answered %s" % (what, url, r.status_code), body=body)
    return body, r


# ---- discovery ------------------------------------------------------------------
def wait_ready(s, args, run):
    """Bounded readiness: the edge may still be getting its certificates. Any
    other failure (a wrong status, a chain that never verifies) ends the run."""
    url = "https://%s/.well-known/matrix/client" % args.server_name
    deadline, attempts = time.monotonic() + args.ready_timeout, 0
    while True:
        attempts += 1
        try:
            s.get(url, timeout=10)
            run.step("edge ready", attempts=attempts)
            return
        except (requests.exceptions.SSLError, requests.exceptions.ConnectionError) as exc:
            if time.monotonic() > deadline:
                raise Failed("%s never answered over verified TLS: %s" % (url, exc))
            time.sleep(2)


def discover(s, args, run):
    wait_ready(s, args, run)
    wk, _ = get_json(s, "https://%s/.well-known/matrix/client" % args.server_name, run, "well-known")
    base = wk.get("m.homeserver", {}).get("base_url")
    run.check(isinstance(base, str) and base.startswith("https://"), "well-known base_url", wk=wk)
    base = base if base.endswith("/") else base + "/"
    run.step("well-known", base_url=base)
    meta, r = get_json(s, base + "_matrix/client/v1/auth_metadata", run, "auth_metadata")
    run.check(meta.get("issuer") == args.expected_issuer, "auth_metadata issuer vs MAS public_base",
              issuer=meta.get("issuer"), expected=args.expected_issuer)
    unstable, _ = get_json(s, base + "_matrix/client/unstable/org.matrix.msc2965/auth_metadata", run,
                           "unstable auth_metadata")
    run.check(unstable.get("issuer") == args.expected_issuer, "unstable auth_metadata issuer",
              issuer=unstable.get("issuer"))
    issuer = meta["issuer"]
    mas, _ = get_json(s, issuer.rstrip("/") + "/.well-known/openid-configuration", run, "MAS discovery")
    for key in ("issuer", "authorization_endpoint", "token_endpoint", "registration_endpoint",
                "revocation_endpoint"):
        run.check(mas.get(key) == meta.get(key), "MAS discovery vs auth_metadata: " + key,
                  mas=mas.get(key), homeserver=meta.get(key))
        run.check(key == "issuer" or str(mas.get(key)).startswith("https://"), key + " is https", value=mas.get(key))
    run.check("S256" in mas.get("code_challenge_methods_supported", []), "S256 supported")
    run.step("auth_metadata", issuer=issuer, cache_control=r.headers.get("Cache-Control"),
             prompt_values_supported=mas.get("prompt_values_supported"),
             device_authorization_endpoint=mas.get("device_authorization_endpoint"))
    return base, mas


# ---- dynamic client registration (MSC2966) -------------------------------------
def element_x_metadata(args):
    """What Element X's FFI sends: a native public client, a custom-scheme redirect
    whose scheme is the reversed client_uri host, and a loopback one."""
    host = urllib.parse.urlsplit(args.client_uri).hostname
    scheme = ".".join(reversed(host.split("."))) + ".x"
    return {
        "application_type": "native",
        "client_name": "Element X (masctl test)",
        "client_uri": args.client_uri,
        "tos_uri": args.client_uri.rstrip("/") + "/terms",
        "policy_uri": args.client_uri.rstrip("/") + "/privacy",
        "redirect_uris": [scheme + ":/", "http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token", DEVICE_GRANT],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }


def register(s, mas, metadata):
    r = s.post(mas["registration_endpoint"], json=metadata, timeout=30)
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, {"text": r.text[:300]}


def register_client(s, mas, args, run):
    meta = element_x_metadata(args)
    status, body = register(s, mas, meta)
    run.check(status == 201, "registration of Element X's metadata", status=status, body=body)
    run.check("client_secret" not in body, "a public client gets no secret", body=body)
    again_status, again = register(s, mas, meta)
    run.check(again_status == 201 and again.get("client_id") == body["client_id"],
              "identical public metadata gives the same client_id", first=body.get("client_id"),
              second=again.get("client_id"))
    run.step("registration", client_id=body["client_id"], redirect_uris=body.get("redirect_uris"))
    return body["client_id"], meta["redirect_uris"][0]


# ---- the browser ------------------------------------------------------------------
class Browser:
    """Debian's chromium through Playwright, trusting only the given CA (an NSS
    database in a throwaway HOME), with the stack's names mapped."""

    def __init__(self, args):
        from playwright.sync_api import sync_playwright
        self.home = tempfile.mkdtemp(prefix="ngl-home-")
        nss = os.path.join(self.home, ".pki", "nssdb")
        os.makedirs(nss)
        subprocess.run(["certutil", "-N", "-d", "sql:" + nss, "--empty-password"], check=True,
                       capture_output=True)
        subprocess.run(["certutil", "-A", "-d", "sql:" + nss, "-n", "test-ca", "-t", "C,,", "-i", args.ca_file],
                       check=True, capture_output=True)
        flags = list(CHROMIUM_FLAGS)
        if args.resolve:
            flags.append("--host-resolver-rules=" + ", ".join("MAP %s %s" % kv for kv in args.resolve.items()))
        self.pw = sync_playwright().start()
        env = dict(os.environ, HOME=self.home)
        self.ctx = self.pw.chromium.launch_persistent_context(
            os.path.join(self.home, "user-data"), executable_path=args.chromium, headless=True, args=flags,
            env=env)
        self.page = self.ctx.new_page()
        self.page.set_default_timeout(30000)

    def goto(self, url):
        """page.goto, again when Chromium aborts it because the host's interfaces
        changed under it (other tests' Docker networks coming and going)."""
        for attempt in range(5):
            try:
                return self.page.goto(url)
            except Exception as exc:
                aborted = "ERR_NETWORK_CHANGED" in str(exc) or 'another navigation to "chrome-error://' in str(exc)
                if not aborted or attempt == 4:
                    raise

    def fill(self, fields):
        for name, value in fields.items():
            loc = self.page.locator("[name=%s]" % name)
            if loc.get_attribute("type") == "checkbox":
                loc.check()
            else:
                loc.fill(value)

    def _button(self, button):
        form = self.page.locator("form[method=POST], form[method=post]").filter(
            has=self.page.locator("[name=csrf]")).first
        return form.locator(button or "button[type=submit]").first

    def submit(self, fields, then, button=None):
        """Fills and submits the page's form, then waits for the next page's
        content (`then`, a selector, or any of a comma-separated list)."""
        for attempt in range(3):
            self.fill(fields)
            self._button(button).click()
            try:
                self.page.wait_for_selector(then, state="attached")
                return
            except Exception as exc:
                if not self._network_changed() or attempt == 2:
                    raise Failed("after submitting, no %r (page %s: %s): %s" % (then, self.page.url, self.text(), exc))
            # Chromium aborted the POST as the host's interfaces changed: back to
            # the form (or past it, if the POST had landed) and submit it again.
            self.page.go_back()
            if self.page.locator(then).count():
                return

    def _network_changed(self):
        return self.page.url.startswith("chrome-error:") and "ERR_NETWORK_CHANGED" in self.text()

    def submit_to_client(self, fields, prefix):
        """Submits a form whose answer redirects to the client's redirect URI (a
        custom scheme the browser cannot open); returns the Location it carried."""
        self.fill(fields)

        def to_client(response):
            return 300 <= response.status < 400 and (response.headers.get("location") or "").startswith(prefix)
        try:
            with self.page.expect_response(to_client) as info:
                self._button(None).click(no_wait_after=True)
        except Exception as exc:
            raise Failed("no redirect to %s (page %s: %s): %s" % (prefix, self.page.url, self.text(), exc))
        return info.value.headers["location"]

    def text(self):
        try:
            return self.page.inner_text("body")[:500]
        except Exception:
            return ""

    def close(self):
        try:
            self.ctx.close()
            self.pw.stop()
        finally:
            shutil.rmtree(self.home, ignore_errors=True)


def login_in_browser(b, url, args, run, create=False):
    b.goto(url)
    b.page.wait_for_selector(LOGIN_FORM, state="attached")
    path = urllib.parse.urlsplit(b.page.url).path
    csrf = b.page.locator("[name=csrf]").first.get_attribute("value")
    run.check(bool(csrf), "the form carries a csrf field", url=b.page.url)
    if create:
        # MAS's /register sends a password-only server straight to /register/password.
        run.check(path.endswith("/register/password"), "prompt=create lands on MAS's password registration page",
                  url=b.page.url)
        b.submit({"username": args.user, "password": args.password, "password_confirm": args.password},
                 then=DISPLAY_NAME_FORM)
        run.check("/register/steps/" in b.page.url, "registration asks for a display name next", url=b.page.url)
        b.submit({"display_name": "Display " + args.user}, then=CONSENT_FORM)
    else:
        run.check(path.endswith("/login"), "the authorization request lands on MAS's /login page", url=b.page.url)
        b.submit({"username": args.user, "password": args.password}, then=CONSENT_FORM)
    run.step("browser login" if not create else "browser registration", page=urllib.parse.urlsplit(b.page.url).path)


def consent_in_browser(b, run, redirect_prefix):
    # The consent form is on the page (submit waited for it); its URL has committed.
    run.check("/consent/" in b.page.url, "after login MAS shows its consent page", url=b.page.url, text=b.text())
    loc = b.submit_to_client({}, redirect_prefix)
    run.step("consent", redirect=loc.split("?")[0])
    return loc


# ---- the code flow ------------------------------------------------------------------
def oauth_session(s, client_id, redirect_uri, scope):
    o = OAuth2Session(client_id, redirect_uri=redirect_uri, scope=scope, code_challenge_method="S256",
                      token_endpoint_auth_method="none")
    o.trust_env = False
    o.verify = s.verify
    return o


def new_device_id():
    return "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(12))


def authorize(b, s, mas, client_id, redirect_uri, args, run, create=False):
    device = new_device_id()
    scope = "%s %s%s" % (API_SCOPE, DEVICE_SCOPE, device)
    o = oauth_session(s, client_id, redirect_uri, scope)
    verifier = generate_token(64)
    extra = {"prompt": "create"} if create else {}
    url, state = o.create_authorization_url(mas["authorization_endpoint"], code_verifier=verifier, **extra)
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    run.check(q.get("code_challenge_method") == "S256" and q.get("code_challenge"), "authlib sent PKCE S256", query=q)
    login_in_browser(b, url, args, run, create=create)
    loc = consent_in_browser(b, run, redirect_uri)
    back = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query))
    run.check(back.get("state") == state, "state comes back", sent=state, got=back.get("state"))
    run.check(bool(back.get("code")), "a code comes back", got=back)
    return o, back["code"], verifier, device, loc


def exchange(o, mas, code, verifier, run):
    SECRETS[0].add(code, verifier)
    token = o.fetch_token(mas["token_endpoint"], code=code, code_verifier=verifier)
    SECRETS[0].add(token.get("access_token"), token.get("refresh_token"))
    run.check(token.get("token_type", "").lower() == "bearer" and token.get("access_token")
              and token.get("refresh_token"), "the token response", keys=sorted(token))
    run.step("token", expires_in=token.get("expires_in"), scope=token.get("scope"))
    return token


def whoami(s, base, token, run, user_id, device, what="whoami"):
    body, _ = get_json(s, base + "_matrix/client/v3/account/whoami", run, what, token=token)
    run.check(body.get("user_id") == user_id, what + " names the user", got=body.get("user_id"), expected=user_id)
    run.check(body.get("device_id") == device, what + " names the device from the scope",
              got=body.get("device_id"), expected=device)
    run.step(what, user_id=body["user_id"], device_id=body["device_id"])


def sync(s, base, token, run):
    body, _ = get_json(s, base + "_matrix/client/v3/sync?timeout=0", run, "sync", token=token)
    run.check(isinstance(body.get("next_batch"), str), "/sync gives a next_batch")
    run.step("sync", next_batch=body["next_batch"][:16])


def refused(s, base, token, run, what):
    """Synapse answers 401 M_UNKNOWN_TOKEN for a dead token (it caches
    introspection, but a token's device is deleted when its session ends)."""
    url = base + "_matrix/client/v3/account/whoami"
    deadline = time.monotonic() + args_timeout()
    while True:
        r = s.get(url, headers={"Authorization": "Bearer " + token}, timeout=30)
        body = r.json() if r.headers.get("Content-Type", "").startswith("application/json") else {}
        if r.status_code == 401 and body.get("errcode") == "M_UNKNOWN_TOKEN":
            run.step(what, status=401, errcode="M_UNKNOWN_TOKEN")
            return
        if time.monotonic() > deadline:
            raise Failed("%s: whoami answered %s %s" % (what, r.status_code, body))
        time.sleep(1)


_TIMEOUT = [150]


def args_timeout():
    return _TIMEOUT[0]


def mode_login(s, args, run, create=False):
    base, mas = discover(s, args, run)
    if create:
        run.check("create" in (mas.get("prompt_values_supported") or []),
                  "prompt_values_supported lists create when registration is open",
                  got=mas.get("prompt_values_supported"))
    client_id, redirect_uri = register_client(s, mas, args, run)
    b = Browser(args)
    try:
        o, code, verifier, device, _ = authorize(b, s, mas, client_id, redirect_uri, args, run, create=create)
    finally:
        b.close()
    token = exchange(o, mas, code, verifier, run)
    user_id = "@%s:%s" % (args.user, args.server_name)
    whoami(s, base, token["access_token"], run, user_id, device)
    sync(s, base, token["access_token"], run)
    new = o.refresh_token(mas["token_endpoint"], refresh_token=token["refresh_token"])
    SECRETS[0].add(new.get("access_token"), new.get("refresh_token"))
    run.check(new["access_token"] != token["access_token"] and new.get("refresh_token")
              and new["refresh_token"] != token["refresh_token"], "refresh rotates both tokens")
    run.step("refresh", expires_in=new.get("expires_in"))
    whoami(s, base, new["access_token"], run, user_id, device, "whoami after refresh")
    r = o.revoke_token(mas["revocation_endpoint"], token=new["access_token"], token_type_hint="access_token")
    run.check(r.status_code == 200, "revocation answers 200", status=r.status_code, body=r.text[:200])
    run.step("revocation")
    refused(s, base, new["access_token"], run, "revoked token refused by Synapse")
    try:
        o.refresh_token(mas["token_endpoint"], refresh_token=new["refresh_token"])
        raise Failed("the refresh token of a revoked session still works")
    except OAuthError as exc:
        run.check(exc.error == "invalid_grant", "refresh after revocation", error=exc.error)
    run.step("refresh after revocation", error="invalid_grant")


# ---- QR-code login's rendezvous (MSC4108) ---------------------------------------------
def rendezvous(s, base, run):
    """Creates a rendezvous session through the edge and reads it back, as the two
    devices of a QR-code login do; a browser's preflight is answered too."""
    create = base + "_matrix/client/unstable/org.matrix.msc4108/rendezvous"
    payload = "masctl-rendezvous-" + generate_token(16)
    r = s.post(create, data=payload, headers={"Content-Type": "text/plain"}, timeout=30)
    run.check(r.status_code == 201, "rendezvous session created", status=r.status_code, body=r.text[:300])
    url = r.json().get("url", "")
    run.check(url.startswith(base + "_synapse/client/rendezvous/"), "rendezvous URL on the public base", url=url)
    got = s.get(url, timeout=30)
    run.check(got.status_code == 200 and got.text == payload and got.headers.get("ETag"),
              "rendezvous session read back", status=got.status_code, body=got.text[:100])
    pre = s.options(url, headers={"Origin": "https://app.example.org", "Access-Control-Request-Method": "PUT"},
                    timeout=30)
    run.check(pre.status_code == 204 and pre.headers.get("Access-Control-Allow-Origin") == "*"
              and "ETag" in pre.headers.get("Access-Control-Expose-Headers", ""), "rendezvous preflight",
              status=pre.status_code, headers=dict(pre.headers))
    run.step("rendezvous", url=url.split("/rendezvous/")[0] + "/rendezvous/…", etag=got.headers.get("ETag"))


# ---- the device authorization grant ------------------------------------------------
def mode_device(s, args, run):
    base, mas = discover(s, args, run)
    rendezvous(s, base, run)
    endpoint = mas.get("device_authorization_endpoint")
    run.check(bool(endpoint) and DEVICE_GRANT in mas.get("grant_types_supported", []),
              "the device grant is advertised", endpoint=endpoint)
    client_id, redirect_uri = register_client(s, mas, args, run)
    device = new_device_id()
    scope = "%s %s%s" % (API_SCOPE, DEVICE_SCOPE, device)
    o = oauth_session(s, client_id, redirect_uri, scope)
    r = o.post(endpoint, data={"client_id": client_id, "scope": scope}, withhold_token=True, timeout=30)
    run.check(r.status_code == 200, "device authorization", status=r.status_code, body=r.text[:300])
    grant = r.json()
    SECRETS[0].add(grant.get("device_code"))
    run.check(len(grant.get("user_code", "")) == 6 and grant.get("verification_uri", "").startswith(mas["issuer"]),
              "user_code and verification_uri", grant={k: v for k, v in grant.items() if k != "device_code"})
    run.step("device authorization", verification_uri=grant["verification_uri"], interval=grant.get("interval"),
             expires_in=grant.get("expires_in"))

    def poll():
        try:
            return o.fetch_token(mas["token_endpoint"], grant_type=DEVICE_GRANT, device_code=grant["device_code"])
        except OAuthError as exc:
            return exc.error
    run.check(poll() == "authorization_pending", "polling before consent")
    run.step("poll before consent", error="authorization_pending")
    b = Browser(args)
    try:
        b.goto(grant["verification_uri"])
        b.page.wait_for_selector("form:has([name=csrf]):has([name=code])", state="attached")
        b.submit({"code": grant["user_code"].lower()}, then=LOGIN_FORM + ", " + DEVICE_CONSENT_FORM)
        if b.page.locator(LOGIN_FORM).count():
            run.check("/login" in b.page.url, "a valid code leads to MAS's login", url=b.page.url)
            b.submit({"username": args.user, "password": args.password}, then=DEVICE_CONSENT_FORM)
        run.check("/device/" in b.page.url, "MAS shows the device consent page", url=b.page.url, text=b.text())
        b.submit({"confirm_device": "on"}, then="body:not(:has(%s))" % DEVICE_CONSENT_FORM,
                 button="button[value=consent]")
        run.step("device consent", page=urllib.parse.urlsplit(b.page.url).path)
    finally:
        b.close()
    token = poll()
    run.check(isinstance(token, dict) and token.get("access_token"), "polling after consent", got=token)
    SECRETS[0].add(token.get("access_token"), token.get("refresh_token"))
    run.check(poll() == "invalid_grant", "a device code is exchanged once")
    user_id = "@%s:%s" % (args.user, args.server_name)
    whoami(s, base, token["access_token"], run, user_id, device)
    r = o.revoke_token(mas["revocation_endpoint"], token=token["access_token"], token_type_hint="access_token")
    run.check(r.status_code == 200, "revocation", status=r.status_code)
    refused(s, base, token["access_token"], run, "revoked device-grant token refused by Synapse")


# ---- refusals -----------------------------------------------------------------------
def mode_negative(s, args, run):
    base, mas = discover(s, args, run)
    host = urllib.parse.urlsplit(args.client_uri).hostname
    web = {"application_type": "web", "client_uri": args.client_uri, "token_endpoint_auth_method": "none",
           "redirect_uris": ["https://elsewhere.example.net/callback"], "response_types": ["code"],
           "grant_types": ["authorization_code"]}
    cases = [
        ("web client, redirect on another host", web, "invalid_redirect_uri", "invalid redirect_uri"),
        ("native client, custom scheme not from client_uri",
         dict(element_x_metadata(args), redirect_uris=["org.example.other:/cb"]), "invalid_redirect_uri",
         "invalid redirect_uri"),
        ("web client with a loopback redirect", dict(web, redirect_uris=["http://127.0.0.1/cb"]),
         "invalid_redirect_uri", "invalid redirect_uri"),
        ("plain-http client_uri", dict(element_x_metadata(args), client_uri="http://%s/" % host,
                                       tos_uri=None, policy_uri=None),
         "invalid_client_metadata", "invalid client_uri"),
        ("tos_uri on another host", dict(element_x_metadata(args), tos_uri="https://elsewhere.example.net/tos"),
         "invalid_client_metadata", "tos_uri not on the same host as the client_uri"),
        ("no client_uri", {k: v for k, v in element_x_metadata(args).items()
                           if k not in ("client_uri", "tos_uri", "policy_uri")},
         "invalid_redirect_uri", "missing client_uri"),
        ("redirect URI with a fragment", dict(element_x_metadata(args), redirect_uris=["http://127.0.0.1/cb#x"]),
         "invalid_redirect_uri", None),
    ]
    refusals = []
    if args.policy_stub:
        # The dist's policy.wasm allows every registration (the real one needs opa).
        cases = []
        run.step("registration refusals skipped: MAS runs the permissive policy stub")
    for name, meta, code, message in cases:
        meta = {k: v for k, v in meta.items() if v is not None}
        status, body = register(s, mas, meta)
        run.check(status == 400 and body.get("error") == code, "registration refused: " + name,
                  status=status, body=body, expected=code)
        if message is not None:
            run.check(message in body.get("error_description", "").split("; "),
                      "refusal names the rule: " + name, body=body, expected=message)
        refusals.append({"case": name, "error": body["error"], "error_description": body.get("error_description")})
    run.step("registration refusals", refusals=refusals)

    client_id, redirect_uri = register_client(s, mas, args, run)
    b = Browser(args)
    try:
        o, code, verifier, device, _ = authorize(b, s, mas, client_id, redirect_uri, args, run)
        wrong = generate_token(64)
        try:
            o.fetch_token(mas["token_endpoint"], code=code, code_verifier=wrong)
            raise Failed("a wrong PKCE verifier was accepted")
        except OAuthError as exc:
            run.check(exc.error == "invalid_grant" and "PKCE verification failed" in (exc.description or ""),
                      "wrong PKCE verifier", error=exc.error, description=exc.description)
            run.step("wrong PKCE verifier", error=exc.error, error_description=exc.description)
        token = exchange(o, mas, code, verifier, run)
        try:
            o.fetch_token(mas["token_endpoint"], code=code, code_verifier=verifier)
            raise Failed("a reused code was accepted")
        except OAuthError as exc:
            run.check(exc.error == "invalid_grant", "reused code", error=exc.error)
            run.step("reused code", error=exc.error)
        # prompt=none never passes: MAS answers login_required on the redirect URI.
        o2 = oauth_session(s, client_id, redirect_uri, "%s %s%s" % (API_SCOPE, DEVICE_SCOPE, new_device_id()))
        url, _ = o2.create_authorization_url(mas["authorization_endpoint"], code_verifier=generate_token(64),
                                             prompt="none")
        r = s.get(url, allow_redirects=False, timeout=30)
        loc = r.headers.get("Location", "")
        err = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(loc).query)).get("error")
        run.check(r.status_code in (302, 303) and err == "login_required", "prompt=none", status=r.status_code,
                  location=loc)
        run.step("prompt=none", error=err)
    finally:
        b.close()
    user_id = "@%s:%s" % (args.user, args.server_name)
    whoami(s, base, token["access_token"], run, user_id, device)
    r = o.revoke_token(mas["revocation_endpoint"], token=token["access_token"], token_type_hint="access_token")
    run.check(r.status_code == 200, "revocation", status=r.status_code)
    refused(s, base, token["access_token"], run, "revoked token refused by Synapse")
    try:
        o.refresh_token(mas["token_endpoint"], refresh_token=token["refresh_token"])
        raise Failed("refresh of a revoked session was accepted")
    except OAuthError as exc:
        run.check(exc.error == "invalid_grant", "refresh of a revoked session", error=exc.error)
    run.step("revoked session's refresh token", error="invalid_grant")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--server-name", required=True, help="the Matrix server name (serves the well-known file)")
    p.add_argument("--expected-issuer", required=True, help="MAS's public_base, e.g. https://matrix.b.test/auth/")
    p.add_argument("--ca-file", required=True, help="the only CA trusted, for Python and chromium")
    p.add_argument("--user", required=True)
    p.add_argument("--password-file", required=True, help="a file holding the password (never on the command line)")
    p.add_argument("--mode", choices=("login", "register", "device", "negative"), default="login")
    p.add_argument("--client-uri", default="https://element.io/")
    p.add_argument("--resolve", action="append", default=[], help="host=ip, for names only Docker resolves")
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--policy-stub", action="store_true",
                   help="MAS runs a permissive policy.wasm: skip the registrations only its real policy refuses")
    p.add_argument("--tokens-file", help="append every token obtained here (0600), for the caller's leak scan")
    p.add_argument("--timeout", type=int, default=150, help="seconds to wait for Synapse to refuse a dead token")
    p.add_argument("--ready-timeout", type=int, default=120, help="seconds to wait for the edge's certificates")
    a = p.parse_args(argv)
    with open(a.password_file, encoding="utf-8") as f:
        a.password = f.read().strip()
    a.resolve = dict(r.split("=", 1) for r in a.resolve)
    return a


def main(argv):
    args = parse_args(argv)
    _TIMEOUT[0] = args.timeout
    SECRETS[0] = Secrets(args.tokens_file)
    install_resolver(args.resolve)
    run = Run(args.mode)
    s = http(args)
    result = {"mode": args.mode}
    try:
        {"login": lambda: mode_login(s, args, run), "register": lambda: mode_login(s, args, run, create=True),
         "device": lambda: mode_device(s, args, run), "negative": lambda: mode_negative(s, args, run)}[args.mode]()
        result.update(ok=True)
    except (Failed, OAuthError, requests.RequestException, AssertionError) as exc:
        result.update(ok=False, error="%s: %s" % (type(exc).__name__, exc))
    except Exception as exc:  # the browser's own errors: reported, not a traceback
        result.update(ok=False, error="%s: %s" % (type(exc).__name__, exc))
    result["steps"] = run.steps
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
