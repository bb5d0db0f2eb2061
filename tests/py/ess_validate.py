#!/usr/bin/env python3
"""Offline checks of a `masctl export ess` directory.

ess_validate.py EXPORT_DIR [--schema values.schema.json] [--synapse-config homeserver.yaml
    --mas-config config.yaml --secrets-dir DIR]

1. values.yaml against the chart's values schema (jsonschema, Draft 2020-12);
2. every Secret in secrets.yaml valid for Kubernetes 1.33 (kubernetes-validate --strict,
   which ships its schemas: no network);
3. every secret/secretKey (configSecret/configSecretKey) the values name exists;
4. with --synapse-config: Element's ess-migration-tool on masctl's generated configs
   (the /run/secrets/ paths read from --secrets-dir) agrees on the server name, hosts,
   database settings and every credential's value.
Prints one JSON result; exits 1 with one line per failure on stderr.
"""
import argparse, base64, json, os, pathlib, re, subprocess, sys, tempfile

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


def rewrite_paths(text, secrets_dir):
    return text.replace("/run/secrets/", str(pathlib.Path(secrets_dir).resolve()) + "/")


def run_migration_tool(args, bundled):
    out = tempfile.mkdtemp(prefix="ess-mig-")
    cmd = [str(pathlib.Path(sys.executable).with_name("ess-migration-tool")), "--quiet",
           "--output-dir", out, "--database-mode", "ess-managed" if bundled else "existing"]
    for flag, src in (("--synapse-config", args.synapse_config), ("--mas-config", args.mas_config)):
        if src:
            f = pathlib.Path(out, pathlib.Path(src).name + ".in")
            f.write_text(rewrite_paths(pathlib.Path(src).read_text(), args.secrets_dir or "/run/secrets"))
            cmd += [flag, str(f)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return None, None, [f"ess-migration-tool failed: {(r.stderr or r.stdout).strip()[-500:]}"]
    theirs = {}
    for f in pathlib.Path(out).rglob("*.yaml"):
        for doc in yaml.safe_load_all(f.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "Secret":
                data = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
                data.update(doc.get("stringData") or {})
                theirs[doc["metadata"]["name"]] = (doc, data)
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


def check_against_tool(values, secrets, args):
    bundled = (values.get("postgres") or {}).get("enabled", True)
    theirs, their_secrets, fails = run_migration_tool(args, bundled)
    if fails:
        return fails
    for p in COMPARED:
        a, b = pointer(values, p), pointer(theirs, p)
        if b is not None and a != b:
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
    args = ap.parse_args()
    d = pathlib.Path(args.export_dir)
    fails, checks = [], {}
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
        f = check_against_tool(values, secrets, args)
        checks["ess-migration-tool"] = "ok" if not f else "failed"
        fails += f
    print(json.dumps({"ok": not fails, "checks": checks, "failures": fails}))
    for f in fails:
        print(f, file=sys.stderr)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
