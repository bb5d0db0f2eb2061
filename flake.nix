{
  description = "masctl: deploy Postgres and Synapse the NixOS way (pinned images, generations, switch and rollback)";

  # rustc >= 1.89 (Cargo.toml's rust-version, edition 2024).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (
        system: pkgs: {
          masctl = pkgs.callPackage ./nix/package.nix { };
          default = self.packages.${system}.masctl;
        }
      );

      apps = forAllSystems (
        system: pkgs: {
          default = {
            type = "app";
            program = "${self.packages.${system}.default}/bin/masctl";
          };
        }
      );

      overlays.default = final: prev: { masctl = final.callPackage ./nix/package.nix { }; };

      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./nix/module.nix ];
          services.masctl.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };
      nixosModules.masctl = self.nixosModules.default;

      devShells = forAllSystems (
        system: pkgs: {
          default = pkgs.mkShell {
            packages = with pkgs; [
              rustc
              cargo
              clippy
              rustfmt
              cargo-nextest
              pkg-config
              xz
              docker-client
              debootstrap
              python3
            ];
          };
        }
      );

      checks = forAllSystems (
        system: pkgs: {
          # Unit tests only (`cargo test --bins`): the integration tests need
          # Docker and a systemd host (scripts/test.sh runs them).
          unit-tests = self.packages.${system}.default.override { runUnitTests = true; };
          # The installed package: share/ layout, config check, completions, man.
          smoke = pkgs.callPackage ./nix/smoke.nix { masctl = self.packages.${system}.default; };
          module-eval = import ./nix/module-eval.nix {
            inherit nixpkgs pkgs;
            module = self.nixosModules.default;
          };
        }
      );
    };
}
