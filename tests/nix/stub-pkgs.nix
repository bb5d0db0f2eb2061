# A stand-in for the few `pkgs` attributes that nix/module.nix and
# nix/package.nix read. Nothing here builds anything:
#   - formats.toml {}.generate returns a fake derivation that carries the value it
#     was given (so the test can read back what would be rendered); it does not
#     render or validate TOML (nixpkgs does that with remarshal);
#   - callPackage imports the file and calls it with the stand-ins below (plus the
#     caller's overrides), like nixpkgs' callPackage without auto-wiring all of pkgs;
#   - rustPlatform.buildRustPackage returns its arguments as a fake derivation, so
#     the test sees what package.nix asks for, not whether it builds.
{ lib }:

let
  fakeDrv = name: extra: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
  }
  // extra;

  self = {
    inherit lib;

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
          fakeDrv name {
            _stub = "formats.toml.generate";
            inherit value;
          };
      };

    pkg-config = fakeDrv "pkg-config" { };
    xz = fakeDrv "xz" { };

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
      f (builtins.intersectAttrs wanted self // overrides);
  };
in
self
