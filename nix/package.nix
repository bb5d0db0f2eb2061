# masctl, built by nixpkgs' Rust tooling from Cargo.lock.
#
# Every crate is a fixed-output fetch pinned by the checksum in Cargo.lock
# (cargoLock.lockFile), so the build itself runs without network. The C parts
# (liblzma-sys, ring) are compiled by the cc crate with stdenv's compiler;
# liblzma-sys links the system liblzma found through pkg-config when it is new
# enough (>= 5.8) and builds its bundled copy otherwise.
#
# The unit templates in units/ are compiled into the binary (include_str!); they
# are also installed next to the image declarations for reference:
#   $out/bin/masctl
#   $out/share/masctl/images/   (found by masctl as <prefix>/share/masctl/images)
#   $out/share/masctl/units/
{
  lib,
  rustPlatform,
  pkg-config,
  xz,
  # The checks set this: unit tests only (`cargo test --bins`). The integration
  # tests in tests/ need Docker and a systemd host, which a Nix sandbox has not.
  runUnitTests ? false,
}:

let
  cargoToml = lib.importTOML ../Cargo.toml;
in
rustPlatform.buildRustPackage {
  pname = cargoToml.package.name;
  version = cargoToml.package.version;

  # Only what the build reads: changes to docs, scripts or tests/ do not rebuild.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      ../units
      ../images
    ];
  };

  cargoLock.lockFile = ../Cargo.lock;

  nativeBuildInputs = [ pkg-config ];
  buildInputs = [ xz ];

  doCheck = runUnitTests;
  cargoTestFlags = [ "--bins" ];

  postInstall = ''
    mkdir -p $out/share/masctl
    cp -r images units $out/share/masctl/
  '';

  meta = {
    description = cargoToml.package.description;
    license = lib.licenses.asl20;
    mainProgram = "masctl";
    platforms = lib.platforms.linux;
  };
}
