# A stand-in for the few `pkgs` attributes that nix/module.nix, nix/package.nix
# and flake.nix read. Nothing here builds anything:
#   - formats.toml {}.generate returns a fake derivation that carries the value it
#     was given (so the test can read back what would be rendered); it does not
#     render or validate TOML (nixpkgs does that with remarshal);
#   - callPackage imports the file and calls it with the stand-ins below (plus the
#     caller's overrides), like nixpkgs' callPackage without auto-wiring all of pkgs;
#   - rustPlatform.buildRustPackage returns its arguments as a fake derivation, so
#     the test sees what package.nix asks for, not whether it builds;
#   - runCommand returns a fake derivation carrying its environment and script;
#   - stdenv's platforms are just `system` and a canExecute that answers
#     `canExecute` (set it to false to see the cross-compiling paths);
#   - the devShell's tools are fake derivations named after the attribute: that
#     they exist in nixpkgs under these names is not checked here.
{
  lib,
  system ? "x86_64-linux",
  canExecute ? true,
}:

let
  # Fake store paths: the hash part says which stand-in made it.
  fakeDrvIn = hash: name: extra: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/${hash}-${name}";
  }
  // extra;
  fakeDrv = fakeDrvIn "00000000000000000000000000000000";

  platform = {
    inherit system;
    canExecute = _: canExecute;
  };

  self = {
    inherit lib;
    stdenv = {
      hostPlatform = platform;
      buildPlatform = platform;
    };

    formats.toml =
      { }:
      {
        # masctl.toml is a table of tables, strings, booleans and numbers.
        type = lib.types.attrs // {
          name = "TOML value";
          check = v: !(builtins.isNull v) && !(builtins.isFunction v);
        };
        generate =
          name: value:
          fakeDrvIn "gggggggggggggggggggggggggggggggg" name {
            _stub = "formats.toml.generate";
            inherit value;
          };
      };

    mkShell = args: fakeDrv "shell" (args // { _stub = "mkShell"; });
    runCommand =
      name: env: script:
      fakeDrvIn "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr" name (
        env
        // {
          _stub = "runCommand";
          inherit script;
        }
      );

    rustPlatform.buildRustPackage =
      args:
      fakeDrv "${args.pname}-${args.version}" (
        args
        // {
          _stub = "rustPlatform.buildRustPackage";
        }
      );

    callPackage =
      path: overrides:
      let
        f = import path;
        wanted = builtins.functionArgs f;
      in
      f (builtins.intersectAttrs wanted self // overrides)
      // {
        override = more: self.callPackage path (overrides // more);
      };
  }
  // tools;

  tools = lib.genAttrs [
    "pkg-config"
    "installShellFiles"
    "xz"
    "rustc"
    "cargo"
    "clippy"
    "rustfmt"
    "cargo-nextest"
    "docker-client"
    "debootstrap"
    "python3"
  ] (n: fakeDrv n { });
in
self
