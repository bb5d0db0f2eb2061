# Evaluates flake.nix's outputs against the stand-in nixpkgs (stub-nixpkgs/) and
# checks their shape. Run by module-eval.sh:
#
#   nix-instantiate --eval --strict --json tests/nix/eval-flake.nix
#
# `self` is built here the way Nix builds it for a flake (the outputs, plus
# outPath = the source); module-eval.sh also loads the flake with real
# `nix eval --override-input`, which this file does not replace.
#
# It proves flake.nix's wiring: both systems, packages/apps/devShells/checks/
# nixosModules/overlays present, the app runs the package's bin/masctl, the
# unit-tests check is the package with `cargo test --bins`, and the flake's
# NixOS module defaults services.masctl.package to the flake's package. It does
# not prove that the real nixpkgs attributes exist (rustPlatform, docker-client,
# cargo-nextest, …) or that anything builds; checks.<system>.module-eval is not
# evaluated (it needs nixpkgs.lib.nixosSystem), only its presence is checked.
let
  flake = import ../../flake.nix;
  nixpkgs = (import ./stub-nixpkgs/flake.nix).outputs { self = nixpkgs; };
  self = flake.outputs { inherit self nixpkgs; } // {
    outPath = ../..;
  };
  inherit (nixpkgs) lib;

  systems = [
    "aarch64-linux"
    "x86_64-linux"
  ];
  each = f: builtins.all f systems;

  moduleOn =
    system: config:
    lib.evalModule {
      module = self.nixosModules.default;
      pkgs = nixpkgs.legacyPackages.${system};
      inherit config;
    };
  enabled = {
    services.masctl = {
      enable = true;
      settings.server_name = "example.com";
    };
  };
  execStart = system: config: (moduleOn system config).output.systemd.services.masctl-activate.serviceConfig.ExecStart or "";

  devTools = [
    "rustc"
    "cargo"
    "clippy"
    "rustfmt"
    "cargo-nextest"
    "pkg-config"
    "docker-client"
    "debootstrap"
    "python3"
  ];

  cases = {
    top-level-attributes =
      builtins.all (n: builtins.elem n [
        "description"
        "inputs"
        "nixConfig"
        "outputs"
      ]) (builtins.attrNames flake)
      && builtins.isString flake.description;
    nixpkgs-input-pinned-to-a-branch = builtins.match "github:NixOS/nixpkgs/nixos-[0-9][0-9]\\.[0-9][0-9]" flake.inputs.nixpkgs.url != null;
    systems = builtins.attrNames self.packages == systems && builtins.attrNames self.apps == systems
      && builtins.attrNames self.devShells == systems && builtins.attrNames self.checks == systems;

    packages-default-is-masctl = each (
      s:
      let
        p = self.packages.${s};
      in
      p.default.pname == "masctl" && p.default.outPath == p.masctl.outPath && p.default.doCheck == false
    );
    app-runs-bin-masctl = each (
      s:
      self.apps.${s}.default.type == "app"
      && self.apps.${s}.default.program == "${self.packages.${s}.default}/bin/masctl"
    );
    dev-shell-tools = each (
      s:
      let
        names = map (d: d.name) self.devShells.${s}.default.packages;
      in
      builtins.all (t: builtins.elem t names) devTools
    );
    checks-present = each (
      s:
      builtins.attrNames self.checks.${s} == [
        "module-eval"
        "smoke"
        "unit-tests"
      ]
    );
    unit-tests-run-bins-only = each (
      s:
      let
        t = self.checks.${s}.unit-tests;
      in
      t.doCheck == true && t.cargoTestFlags == [ "--bins" ] && t.pname == "masctl"
    );
    module-defaults-to-flake-package = each (
      s: execStart s enabled == "${self.packages.${s}.default}/bin/masctl -c /etc/masctl/masctl.toml switch"
    );
    module-package-overridable =
      execStart "x86_64-linux" (
        lib.recursiveUpdate enabled {
          services.masctl.package = {
            type = "derivation";
            name = "other";
            outPath = "/nix/store/22222222222222222222222222222222-other";
          };
        }
      ) == "/nix/store/22222222222222222222222222222222-other/bin/masctl -c /etc/masctl/masctl.toml switch";
    # Functions do not compare with ==: evaluate the alias instead.
    smoke-checks-the-package = each (
      s:
      let
        c = self.checks.${s}.smoke;
      in
      builtins.elem self.packages.${s}.default c.nativeBuildInputs
      && lib.hasInfix "-masctl.example.toml config check" c.script
    );
    module-alias =
      (lib.evalModule {
        module = self.nixosModules.masctl;
        pkgs = nixpkgs.legacyPackages.x86_64-linux;
        config = enabled;
      }).output.systemd.services.masctl-activate.serviceConfig.ExecStart or null
      == execStart "x86_64-linux" enabled;
    overlay-adds-masctl =
      let
        pkgs = nixpkgs.legacyPackages.x86_64-linux;
      in
      (self.overlays.default pkgs pkgs).masctl.pname == "masctl";
  };

  names = builtins.attrNames cases;
  result = n: builtins.tryEval cases.${n};
  passed = builtins.filter (n: (result n).success && (result n).value == true) names;
  failed = builtins.filter (n: !(builtins.elem n passed)) names;
in
if failed == [ ] then
  {
    inherit passed failed;
    facts = {
      nixpkgs = flake.inputs.nixpkgs.url;
      program = self.apps.x86_64-linux.default.program;
    };
  }
else
  throw "flake-eval: failed: ${builtins.concatStringsSep ", " failed} (passed: ${builtins.concatStringsSep ", " passed})"
