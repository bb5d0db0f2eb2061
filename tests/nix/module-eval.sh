#!/usr/bin/env bash
# Parses every .nix file of the repository, then evaluates nix/module.nix with
# the stand-in lib/pkgs (tests/nix/stub-*.nix) and checks what it produces.
# Needs only nix-instantiate (Debian's nix-bin), no nixpkgs and no network.
# tests/nix.rs runs this; it also runs on its own:  bash tests/nix/module-eval.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v nix-instantiate >/dev/null 2>&1; then
    echo "nix-instantiate not found: install Debian's nix-bin (scripts/test.sh does)" >&2
    exit 2
fi

echo "== nix-instantiate --parse"
for f in flake.nix nix/*.nix tests/nix/*.nix; do
    nix-instantiate --parse "$f" >/dev/null
    echo "parsed $f"
done

echo "== module eval (stub lib, no nixpkgs)"
out=$(nix-instantiate --eval --strict --json tests/nix/eval-module.nix)
echo "$out"
# Count the cases in the JSON without a JSON tool: the names are plain words.
passed=$(printf '%s' "$out" | sed -n 's/.*"passed":\[\([^]]*\)\].*/\1/p' | tr ',' '\n' | grep -c '"' || true)
echo "module-eval: $passed passed, 0 failed"
