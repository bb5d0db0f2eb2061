#!/usr/bin/env python3
"""Offline checks of a `masctl export ess` directory.

ess_validate.py EXPORT_DIR [--schema values.schema.json] [--synapse-config homeserver.yaml
    --mas-config config.yaml --secrets-dir DIR [--secret-file NAME=PATH …]]

1. values.yaml against the chart's values schema (jsonschema, Draft 2020-12);
2. every Secret in secrets.yaml valid for Kubernetes 1.33 (kubernetes-validate --strict,
   which ships its schemas: no network);
3. every secret/secretKey (configSecret/configSecretKey) the values name exists;
4. with --synapse-config: Element's ess-migration-tool on masctl's generated configs
   (the /run/secrets/ paths read from --secrets-dir or --secret-file; paths into masctl's
   images at empty stand-ins; MAS's database as the URI the tool reads) agrees on the
   server name, hosts, database settings and every credential's value, including those in
   `additional` (SMTP password, provider client secrets).
Prints one JSON result (with "compared": the settings whose values were compared); exits 1
with one line per failure on stderr.
"""
import argparse, base64, json, os, pathlib, re, subprocess, sys, tempfile, urllib.parse

import jsonschema
import yaml

DEFAULT_SCHEMA = "/work/shared/reference/ess-values.schema.json"


def load_secrets(path):
    out = {}
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc:
            continue
        data = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
        data.update(doc.get("stringData") or {})
        out[doc["metadata"]["name"]] = (doc, data)
    return out


def references(v, at=""):
    if isinstance(v, dict):
        for a, b in (("secret", "secretKey"), ("configSecret", "configSecretKey")):
            if isinstance(v.get(a), str) and isinstance(v.get(b), str):
                yield at, v[a], v[b]
        for k, x in v.items():
            yield from references(x, f"{at}/{k}")
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from references(x, f"{at}/{i}")


def check_schema(values, schema_path):
    schema = json.loads(pathlib.Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    return [f"values.yaml{'/' + '/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
            for e in validator.iter_errors(values)]


def check_k8s(secrets_file):
    with tempfile.TemporaryDirectory() as d:
        files = []
        for i, doc in enumerate(yaml.safe_load_all(secrets_file.read_text())):
            if doc:
                f = pathlib.Path(d, f"{i}.yaml")
                f.write_text(yaml.safe_dump(doc))
                files.append(str(f))
        if not files:
            return ["secrets.yaml: no Secret objects"]
        exe = pathlib.Path(sys.executable).with_name("kubernetes-validate")
        r = subprocess.run([str(exe), "-k", "1.33.0", "--strict", "--quiet", *files],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return [f"secrets.yaml: kubernetes-validate: {l}" for l in (r.stdout + r.stderr).splitlines() if l.strip()]
    return []


def check_refs(values, secrets):
    fails = []
    for at, name, key in references(values):
        if name not in secrets:
            fails.append(f"values.yaml{at}: Secret {name} is not in secrets.yaml")
        elif key not in secrets[name][1]:
            fails.append(f"values.yaml{at}: Secret {name} has no key {key}")
    return fails


def resolve(values, secrets, ref):
    name, key = ref.get("secret"), ref.get("secretKey")
    if "value" in ref:
        return ref["value"]
    return secrets.get(name, ({}, {}))[1].get(key)


def secret_path(name, args):
    """Where masctl's /run/secrets/NAME is on this machine: --secret-file, else --secrets-dir."""
    for given in args.secret_file or []:
        n, _, path = given.partition("=")
        if n == name:
            return str(pathlib.Path(path).resolve())
    return str(pathlib.Path(args.secrets_dir or "/run/secrets", name).resolve())


def stage_config(src, args, image_root):
    """masctl's config as the tool can read it here: /run/secrets/ paths at the real secret
    files (so every credential is read and compared), and the paths into masctl's images
    (MAS's templates, policy, assets …) at empty stand-ins under image_root. Those are
    files of the image, not of the server: the chart's image has its own."""
    def walk(v):
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, str) and v.startswith("/run/secrets/"):
            return secret_path(v[len("/run/secrets/"):], args)
        if isinstance(v, str) and re.match(r"^/[^/]", v) and not os.path.exists(v):
            stand_in = pathlib.Path(image_root, v.lstrip("/"))
            if v.endswith("/"):
                stand_in.mkdir(parents=True, exist_ok=True)
                (stand_in / "stand-in").touch()  # an empty directory counts as missing
            else:
                stand_in.parent.mkdir(parents=True, exist_ok=True)
                stand_in.touch()
            return str(stand_in) + ("/" if v.endswith("/") else "")
        return v
    config = walk(yaml.safe_load(pathlib.Path(src).read_text()))
    db = config.get("database")
    if isinstance(db, dict) and "uri" not in db and "username" in db:
        config["database"] = {"uri": mas_database_uri(db)}
    db_args = db.get("args") if isinstance(db, dict) else None
    if isinstance(db_args, dict) and "passfile" in db_args and "password" not in db_args:
        # The tool reads only database.args.password; libpq's passfile holds the same.
        db_args["password"] = pgpass_password(db_args)
    return yaml.safe_dump(config)


def pgpass_fields(line):
    """A pgpass line's five fields: `:` separates, `\\` escapes `:` and itself."""
    fields, cur, it = [], "", iter(line)
    for c in it:
        if c == "\\":
            cur += next(it, "")
        elif c == ":" and len(fields) < 4:
            fields.append(cur)
            cur = ""
        else:
            cur += c
    return fields + [cur]


def pgpass_password(args):
    """The password libpq takes from args' passfile: the first line matching host, port,
    database and user (`*` matches anything)."""
    want = [str(args.get("host", "")), str(args.get("port", 5432)), str(args.get("dbname") or args.get("database", "")),
            str(args.get("user", ""))]
    for line in pathlib.Path(args["passfile"]).read_text().splitlines():
        f = pgpass_fields(line)
        if len(f) == 5 and all(a in ("*", b) for a, b in zip(f[:4], want)):
            return f[4]
    return None


def mas_database_uri(db):
    """MAS's database as host/username/password_file, which ess-migration-tool 0.2 does
    not read (it takes only `database.uri`), as the equivalent URI MAS also accepts."""
    password = pathlib.Path(db["password_file"]).read_text().strip() if "password_file" in db else db.get("password")
    auth = urllib.parse.quote(db["username"], safe="")
    if password:
        auth += ":" + urllib.parse.quote(password, safe="")
    uri = f"postgresql://{auth}@{db['host']}:{db.get('port', 5432)}/{urllib.parse.quote(db['database'], safe='')}"
    return uri + (f"?sslmode={db['ssl_mode']}" if db.get("ssl_mode") else "")


def run_migration_tool(args, bundled):
    out = tempfile.mkdtemp(prefix="ess-mig-")
    cmd = [str(pathlib.Path(sys.executable).with_name("ess-migration-tool")), "--quiet",
           "--output-dir", out, "--database-mode", "ess-managed" if bundled else "existing"]
    image_root = tempfile.mkdtemp(prefix="ess-image-")
    for flag, src in (("--synapse-config", args.synapse_config), ("--mas-config", args.mas_config)):
        if src:
            f = pathlib.Path(out, pathlib.Path(src).name + ".in")
            f.write_text(stage_config(src, args, image_root))
            cmd += [flag, str(f)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return None, None, [f"ess-migration-tool failed: {(r.stderr or r.stdout).strip()[-500:]}"]
    theirs = {}
    for f in pathlib.Path(out).rglob("*.yaml"):
        for doc in yaml.safe_load_all(f.read_text()):
            # The tool puts secret files it finds in extra files into ConfigMaps.
            if isinstance(doc, dict) and doc.get("kind") in ("Secret", "ConfigMap"):
                data = dict(doc.get("data") or {})
                if doc["kind"] == "Secret":
                    data = {k: base64.b64decode(v).decode() for k, v in data.items()}
                data.update(doc.get("stringData") or {})
                # A ConfigMap may share its Secret's name; values reference only Secrets.
                name = doc["metadata"]["name"] if doc["kind"] == "Secret" else "configmap/" + doc["metadata"]["name"]
                theirs[name] = (doc, data)
    vals = {}
    for f in sorted(pathlib.Path(out).rglob("values*.yaml")):
        vals.update(yaml.safe_load(f.read_text()) or {})
    return vals, theirs, []


COMPARED = ["/serverName", "/synapse/ingress/host", "/matrixAuthenticationService/ingress/host"]
CREDENTIALS = ["/synapse/signingKey", "/synapse/macaroon", "/synapse/registrationSharedSecret",
               "/matrixAuthenticationService/encryptionSecret", "/matrixAuthenticationService/synapseSharedSecret",
               "/matrixAuthenticationService/privateKeys/rsa", "/synapse/postgres/password",
               "/matrixAuthenticationService/postgres/password"]
DB = ["host", "port", "user", "database"]


def pointer(v, p):
    for part in p.strip("/").split("/"):
        if not isinstance(v, dict) or part not in v:
            return None
        v = v[part]
    return v


def moved(args, p, ours, theirs):
    """A host the export moves on purpose (`--mas-host`: the chart serves MAS at the root of
    its own host, masctl under a path) is a difference only when the report names the move."""
    if p != "/matrixAuthenticationService/ingress/host":
        return False
    report = json.loads(pathlib.Path(args.export_dir, "report.json").read_text())
    return any(f["setting"] == "mas.hostname / mas.path_prefix" and f"https://{theirs}/" in f["detail"]
               and f"https://{ours}/" in f["detail"] for f in report)


def merge(a, b):
    """The chart's merge of `additional` fragments: maps merge, the rest is replaced."""
    for k, v in b.items():
        a[k] = merge(a[k], v) if isinstance(a.get(k), dict) and isinstance(v, dict) else v
    return a


def flat(v, at=""):
    if isinstance(v, dict):
        for k, x in v.items():
            yield from flat(x, f"{at}.{k}" if at else k)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from flat(x, f"{at}.{i}")
    else:
        yield at, v


def fragments(values, secrets, comp):
    """`<comp>.additional` as one config: inline fragments and those in Secrets, by key order."""
    out = {}
    for _, frag in sorted((pointer(values, f"/{comp}/additional") or {}).items()):
        text = frag.get("config")
        if text is None:
            text = secrets.get(frag.get("configSecret"), ({}, {}))[1].get(frag.get("configSecretKey"), "")
        merge(out, yaml.safe_load(text) or {})
    return dict(flat(out))


def fragment_credentials(values, secrets, theirs, their_files, comp):
    """Credentials in `additional` (SMTP password, provider client secrets, form secret):
    the tool keeps each as `…_file`/`…_path` to an extra file, the export inline in a
    Secret fragment. Compared by value where both carry the setting."""
    ours, fails, compared = fragments(values, secrets, comp), [], []
    for key, v in fragments(theirs, their_files, comp).items():
        if not (isinstance(v, str) and "/extra/" in v and re.search(r"_(file|path)$", key)):
            continue
        base = re.sub(r"_(file|path)$", "", key)
        name = pathlib.PurePath(v).name
        theirs_value = next((d[name] for _, d in their_files.values() if name in d), None)
        if base in ours and theirs_value is not None:
            compared.append(f"{comp}.additional:{base}")
            if str(ours[base]).strip() != theirs_value.strip():
                fails.append(f"{comp}.additional {base}: the export's value differs from ess-migration-tool's")
    return fails, compared


def check_against_tool(values, secrets, args, compared):
    bundled = (values.get("postgres") or {}).get("enabled", True)
    theirs, their_secrets, fails = run_migration_tool(args, bundled)
    if fails:
        return fails
    for comp in ("synapse", "matrixAuthenticationService"):
        f, c = fragment_credentials(values, secrets, theirs, their_secrets, comp)
        fails += f
        compared += c
    for p in COMPARED:
        a, b = pointer(values, p), pointer(theirs, p)
        if b is not None and a != b and not moved(args, p, a, b):
            fails.append(f"{p}: export has {a!r}, ess-migration-tool {b!r}")
    for comp in ("synapse", "matrixAuthenticationService"):
        tdb = pointer(theirs, f"/{comp}/postgres")
        mdb = pointer(values, f"/{comp}/postgres")
        if tdb and mdb:
            for k in DB:
                if k in tdb and tdb.get(k) != mdb.get(k):
                    fails.append(f"/{comp}/postgres/{k}: export has {mdb.get(k)!r}, ess-migration-tool {tdb[k]!r}")
    for p in CREDENTIALS:
        tref, mref = pointer(theirs, p), pointer(values, p)
        if not isinstance(tref, dict):
            continue
        if not isinstance(mref, dict):
            fails.append(f"{p}: ess-migration-tool carries it, the export does not")
            continue
        a, b = resolve(values, secrets, mref), resolve(theirs, their_secrets, tref)
        if p == "/matrixAuthenticationService/postgres/password" and b is not None:
            # ess-migration-tool 0.2 takes urlparse's password, still percent-encoded.
            b = urllib.parse.unquote(b)
        compared.append(p)
        if (a or "").strip() != (b or "").strip():
            fails.append(f"{p}: the export's value differs from ess-migration-tool's")
    return fails


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export_dir")
    ap.add_argument("--schema", default=DEFAULT_SCHEMA)
    ap.add_argument("--synapse-config")
    ap.add_argument("--mas-config")
    ap.add_argument("--secrets-dir", help="masctl's secrets/, for the configs' /run/secrets/ paths")
    ap.add_argument("--secret-file", action="append", metavar="NAME=PATH",
                    help="a /run/secrets/NAME that is a file of the user's, not in --secrets-dir")
    args = ap.parse_args()
    d = pathlib.Path(args.export_dir)
    fails, checks, compared = [], {}, []
    try:
        values = yaml.safe_load((d / "values.yaml").read_text())
        secrets = load_secrets(d / "secrets.yaml")
    except Exception as e:  # unreadable export: one line, non-zero
        print(json.dumps({"ok": False, "failures": [str(e)]}))
        print(f"{d}: {e}", file=sys.stderr)
        return 1
    for name, fn in (("schema", lambda: check_schema(values, args.schema)),
                     ("kubernetes", lambda: check_k8s(d / "secrets.yaml")),
                     ("references", lambda: check_refs(values, secrets))):
        f = fn()
        checks[name] = "ok" if not f else "failed"
        fails += f
    if args.synapse_config:
        f = check_against_tool(values, secrets, args, compared)
        checks["ess-migration-tool"] = "ok" if not f else "failed"
        fails += f
    print(json.dumps({"ok": not fails, "checks": checks, "failures": fails, "compared": compared}))
    for f in fails:
        print(f, file=sys.stderr)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
