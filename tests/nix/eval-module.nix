# Evaluates nix/module.nix with the stand-ins in stub-nixpkgs/ (lib.nix, pkgs.nix) and
# checks what it produces, case by case. Run by module-eval.sh:
#
#   nix-instantiate --eval --strict --json tests/nix/eval-module.nix
#
# The result is { passed = [ names ]; failed = [ ]; facts = { ... }; } and the
# evaluation throws (non-zero exit) when any case fails.
#
# This proves the module's own logic: which options it declares, their defaults
# and required-ness, that enable gates everything, and the values it gives to
# systemd.services.masctl-activate, environment.etc and docker; and that
# package.nix reads Cargo.toml / Cargo.lock, builds from the right sources and
# installs share/masctl, completions and the man page.
# It does not prove that NixOS accepts those values, that the TOML renders, or
# that anything builds: see stub-nixpkgs/lib.nix, and flake.nix's checks for the
# real run.
let
  lib = import ./stub-nixpkgs/lib.nix;
  pkgs = import ./stub-nixpkgs/pkgs.nix { inherit lib; };
  module = import ../../nix/module.nix;

  eval = config: lib.evalModule { inherit module config pkgs; };

  # Does evaluating `v` all the way down fail (throw / type error)?
  fails = v: !(builtins.tryEval (builtins.deepSeq v true)).success;

  contains = lib.hasInfix;

  minimal = {
    services.masctl = {
      enable = true;
      settings.server_name = "example.com";
    };
  };

  # Lookups default to something that fails the case rather than aborting the
  # whole evaluation (a missing attribute is not catchable by tryEval).
  on = eval minimal;
  out = on.output;
  svc = out.systemd.services.masctl-activate or { };
  sc = svc.serviceConfig or { };
  execStart = sc.ExecStart or "";
  pkg = on.values.services.masctl.package;
  toml = out.environment.etc."masctl/masctl.toml".source or { };
  # With checkConfig (the default) the file is the checked copy of the rendered one.
  rendered = toml.rendered or { };

  # Given to the module and expected back, unchanged, in the rendered TOML.
  customSettings = {
    server_name = "example.org";
    instance = "prod";
    state_root = "/srv/masctl";
    hostnames.matrix = "matrix.example.org";
    synapse = {
      enable_registration = false;
      log_level = "INFO";
    };
    ports.synapse = "127.0.0.1:8008";
  };
  custom = eval {
    services.masctl = {
      enable = true;
      package = {
        type = "derivation";
        name = "masctl-custom";
        outPath = "/nix/store/11111111111111111111111111111111-masctl-custom";
      };
      environment.MASCTL_DEBIAN_MIRRORS = "http://mirror.example/debian";
      settings = customSettings;
    };
  };
  customSvc = custom.output.systemd.services.masctl-activate or { };
  customToml = custom.output.environment.etc."masctl/masctl.toml".source.rendered.value or { };

  unchecked = eval (lib.recursiveUpdate minimal { services.masctl.checkConfig = false; });
  uncheckedToml = unchecked.output.environment.etc."masctl/masctl.toml".source or { };
  cross = lib.evalModule {
    inherit module;
    config = minimal;
    pkgs = import ./stub-nixpkgs/pkgs.nix {
      inherit lib;
      canExecute = false;
    };
  };
  crossToml = cross.output.environment.etc."masctl/masctl.toml".source or { };

  cases = {
    declares-options =
      builtins.attrNames on.options.services.masctl == [
        "checkConfig"
        "enable"
        "environment"
        "package"
        "settings"
      ];
    enable-defaults-false = !(eval { }).values.services.masctl.enable;
    disabled-sets-nothing = (eval { }).output == { } && (eval { services.masctl.enable = false; }).output == { };

    exec-start-runs-switch =
      contains "/bin/masctl" execStart
      && contains " switch" execStart
      && execStart == "${pkg}/bin/masctl -c /etc/masctl/masctl.toml switch";
    oneshot-remain-after-exit = (sc.Type or null) == "oneshot" && (sc.RemainAfterExit or null) == true;
    wanted-by-multi-user = builtins.elem "multi-user.target" (svc.wantedBy or [ ]);
    after-requires-docker =
      builtins.elem "docker.service" (svc.after or [ ]) && builtins.elem "docker.service" (svc.requires or [ ]);
    restart-on-config-change = toml != { } && (svc.restartTriggers or [ ]) == [ toml ];
    docker-enabled = out.virtualisation.docker.enable or false;
    package-on-path = (out.environment.systemPackages or [ ]) == [ pkg ];
    images-from-package = (svc.environment.MASCTL_IMAGES or null) == "${pkg}/share/masctl/images";

    etc-file-rendered-from-settings =
      (rendered._stub or null) == "formats.toml.generate"
      && (rendered.name or null) == "masctl.toml"
      && (rendered.value or null) == {
        server_name = "example.com";
        instance = "masctl";
        state_root = "/var/lib/masctl";
      };
    config-checked-at-build =
      (toml._stub or null) == "runCommand"
      && (toml.name or null) == "masctl.toml"
      && contains "${pkg}/bin/masctl --config \"$rendered\" --images ${pkg}/share/masctl/images config check" (
        toml.script or ""
      )
      && contains "cp \"$rendered\" \"$out\"" (toml.script or "");
    config-check-can-be-off =
      (uncheckedToml._stub or null) == "formats.toml.generate"
      && (uncheckedToml.value.server_name or null) == "example.com";
    no-config-check-when-cross-compiling = (crossToml._stub or null) == "formats.toml.generate";

    server-name-required = fails (eval { services.masctl.enable = true; }).output;
    server-name-must-be-string = fails (eval {
      services.masctl = {
        enable = true;
        settings.server_name = 42;
      };
    }).output;
    unknown-option-rejected = fails (eval {
      services.masctl = {
        enable = true;
        settings.server_name = "example.com";
        bogus = true;
      };
    }).output;

    custom-package-and-settings =
      (customSvc.serviceConfig.ExecStart or null)
      == "/nix/store/11111111111111111111111111111111-masctl-custom/bin/masctl -c /etc/masctl/masctl.toml switch"
      && customToml == customSettings;
    extra-environment =
      (customSvc.environment or null) == {
        MASCTL_IMAGES = "/nix/store/11111111111111111111111111111111-masctl-custom/share/masctl/images";
        MASCTL_DEBIAN_MIRRORS = "http://mirror.example/debian";
      };

    # The default package: nix/package.nix called through the stub callPackage.
    package-from-cargo-lock =
      pkg._stub == "rustPlatform.buildRustPackage"
      && pkg.pname == "masctl"
      && pkg.version == (builtins.fromTOML (builtins.readFile ../../Cargo.toml)).package.version
      && toString pkg.cargoLock.lockFile == toString ../../Cargo.lock
      && pkg.doCheck == false
      && pkg.cargoTestFlags == [ "--bins" ]
      && pkg.meta.mainProgram == "masctl";
    package-source-files =
      pkg.src.files
      == map toString (
        [
          ../../Cargo.toml
          ../../Cargo.lock
          ../../src
          ../../units
          ../../images
        ]
        ++ (if builtins.pathExists ../../build.rs then [ ../../build.rs ] else [ ])
      );
    package-installs-share =
      contains "$out/share/masctl" pkg.postInstall && contains "cp -r images units $out/share/masctl/" pkg.postInstall;
    package-installs-completions-and-man =
      builtins.all (c: contains c pkg.postInstall) [
        "installShellCompletion --cmd masctl"
        "$out/bin/masctl completions bash"
        "$out/bin/masctl completions zsh"
        "$out/bin/masctl completions fish"
        "$out/bin/masctl man > masctl.1"
        "installManPage masctl.1"
      ]
      && builtins.elem "installShellFiles" (map (d: d.name) pkg.nativeBuildInputs)
      && !(contains "installShellCompletion" (cross.values.services.masctl.package.postInstall or "installShellCompletion"));
    unit-tests-variant =
      let
        t = pkgs.callPackage ../../nix/package.nix { runUnitTests = true; };
      in
      t.doCheck == true && t.cargoTestFlags == [ "--bins" ];
  };

  names = builtins.attrNames cases;
  # A case that throws counts as failed, with the error left to the summary.
  result = n: builtins.tryEval cases.${n};
  passed = builtins.filter (n: (result n).success && (result n).value == true) names;
  failed = builtins.filter (n: !(builtins.elem n passed)) names;

  summary = {
    inherit passed failed;
    facts = {
      inherit execStart;
      etc = "masctl/masctl.toml";
      settings = rendered.value;
      package = "${pkg.pname}-${pkg.version}";
    };
  };
in
if failed == [ ] then
  summary
else
  throw "module-eval: failed: ${builtins.concatStringsSep ", " failed} (passed: ${builtins.concatStringsSep ", " passed})"
