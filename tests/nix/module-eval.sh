#!/usr/bin/env bash
# Offline checks of the Nix packaging, with Debian's nix-bin and without nixpkgs:
#   1. every .nix file parses (nix-instantiate --parse);
#   2. nix/module.nix evaluated with stand-in lib/pkgs (tests/nix/eval-module.nix);
#   3. flake.nix's outputs evaluated against the stand-in nixpkgs (eval-flake.nix);
#   4. real flake loading: `nix eval` of the flake with its nixpkgs input
#      overridden by tests/nix/stub-nixpkgs (needs a git checkout).
# What the stand-ins do not prove is written in tests/nix/stub-nixpkgs/*.nix.
# tests/nix.rs runs this; it also runs on its own:  bash tests/nix/module-eval.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

if ! command -v nix-instantiate >/dev/null 2>&1; then
    echo "nix-instantiate not found: install Debian's nix-bin (scripts/test.sh does)" >&2
    exit 2
fi

# Counts the names in the "passed":[...] list of a result (plain words, no JSON tool needed).
count_passed() {
    sed -n 's/.*"passed":\[\([^]]*\)\].*/\1/p' | tr ',' '\n' | grep -c '"' || true
}

echo "== nix-instantiate --parse"
n=0
while IFS= read -r f; do
    nix-instantiate --parse "$f" >/dev/null
    echo "parsed $f"
    n=$((n + 1))
done < <(find . -name '*.nix' -not -path './target/*' -not -path './.git/*' | sort)
echo "parse: $n passed, 0 failed"

echo "== module eval (stand-in lib/pkgs, no nixpkgs)"
out=$(nix-instantiate --eval --strict --json tests/nix/eval-module.nix)
echo "$out"
echo "module-eval: $(printf '%s' "$out" | count_passed) passed, 0 failed"

echo "== flake outputs (stand-in nixpkgs)"
out=$(nix-instantiate --eval --strict --json tests/nix/eval-flake.nix)
echo "$out"
echo "flake-eval: $(printf '%s' "$out" | count_passed) passed, 0 failed"

echo "== nix eval of the flake (nixpkgs input overridden by the stand-in)"
if ! git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "not a git checkout: Nix loads this flake as git+file, which needs one" >&2
    exit 3
fi
errs=$(mktemp)
trap 'rm -f "$errs"' EXIT
nix_eval() { # attribute, function applied to it; prints JSON, or Nix's error on stderr
    nix --extra-experimental-features 'nix-command flakes' eval --json --no-write-lock-file \
        --override-input nixpkgs "path:$root/tests/nix/stub-nixpkgs" "git+file://$root#$1" --apply "$2" 2>"$errs" \
        || { grep -v '^warning:' "$errs" | grep -v -e "^• Added input" -e "^    'path:" >&2; }
}
fail=0
expect() { # name, actual, expected
    if [ "$2" = "$3" ]; then
        echo "ok $1: $2"
    else
        echo "FAILED $1: got $2, expected $3" >&2
        fail=$((fail + 1))
    fi
}
# The stand-in derivations' fixed path (tests/nix/stub-nixpkgs/pkgs.nix).
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
store0=/nix/store/00000000000000000000000000000000-masctl-$version
expect apps "$(nix_eval apps 'a: builtins.mapAttrs (s: v: v.default.program) a')" \
    "{\"aarch64-linux\":\"$store0/bin/masctl\",\"x86_64-linux\":\"$store0/bin/masctl\"}"
expect packages "$(nix_eval packages 'p: builtins.mapAttrs (s: v: [ v.default.pname v.default.doCheck v.default.cargoTestFlags ]) p')" \
    '{"aarch64-linux":["masctl",false,["--bins"]],"x86_64-linux":["masctl",false,["--bins"]]}'
expect checks "$(nix_eval checks 'c: builtins.mapAttrs (s: v: [ (builtins.attrNames v) v.unit-tests.doCheck ]) c')" \
    '{"aarch64-linux":[["module-eval","smoke","unit-tests"],true],"x86_64-linux":[["module-eval","smoke","unit-tests"],true]}'
expect nixosModules "$(nix_eval nixosModules 'm: builtins.mapAttrs (n: builtins.isFunction) m')" \
    '{"default":true,"masctl":true}'
if [ "$fail" -ne 0 ]; then
    echo "nix-eval: $((4 - fail)) passed, $fail failed"
    exit 1
fi
echo "nix-eval: 4 passed, 0 failed"
echo "all nix checks passed"
