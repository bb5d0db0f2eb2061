# The stand-in nixpkgs as a flake, for `nix eval --override-input nixpkgs
# path:tests/nix/stub-nixpkgs` (tests/nix/module-eval.sh): real Nix flake
# loading of /flake.nix without fetching nixpkgs. It only has `lib` and
# `legacyPackages.<system>`, both stand-ins (see lib.nix and pkgs.nix).
{
  description = "stand-in nixpkgs for masctl's offline flake tests";

  outputs =
    { self }:
    let
      lib = import ./lib.nix;
    in
    {
      inherit lib;
      legacyPackages = lib.genAttrs [
        "x86_64-linux"
        "aarch64-linux"
      ] (system: import ./pkgs.nix { inherit lib system; });
    };
}
