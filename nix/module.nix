# NixOS module: services.masctl.
#
# Renders services.masctl.settings to /etc/masctl/masctl.toml (checked with
# `masctl config check` when the system is built, unless checkConfig is off) and runs
# `masctl switch` from a oneshot unit, masctl-activate.service: at boot, and on
# every nixos-rebuild that changes the rendered config (restartTriggers) or the
# unit itself (a new package changes ExecStart). masctl then builds the
# generation, activates it and rolls back by itself if it does not come up.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib)
    literalExpression
    mkEnableOption
    mkIf
    mkOption
    types
    ;

  cfg = config.services.masctl;
  settingsFormat = pkgs.formats.toml { };
  rendered = settingsFormat.generate "masctl.toml" cfg.settings;
  imagesDir = cfg.environment.MASCTL_IMAGES or "${cfg.package}/share/masctl/images";

  # A bad config fails the system build (nixos-rebuild), not the switch. The
  # check parses the file and looks up the image recipes it names; it touches
  # no host state. The built masctl must run on the build machine.
  configFile =
    if cfg.checkConfig && pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform then
      pkgs.runCommand "masctl.toml" { inherit rendered; } ''
        ${cfg.package}/bin/masctl --config "$rendered" --images ${imagesDir} config check
        cp "$rendered" "$out"
      ''
    else
      rendered;
in
{
  options.services.masctl = {
    enable = mkEnableOption "masctl, which deploys Postgres and Synapse with `masctl switch`";

    package = mkOption {
      type = types.package;
      # The flake's nixosModules.default sets the flake's own build (mkDefault);
      # imported on its own, this module builds the same recipe with the host's pkgs.
      default = pkgs.callPackage ./package.nix { };
      defaultText = literalExpression "masctl.packages.\${pkgs.stdenv.hostPlatform.system}.default";
      description = "The masctl package whose `bin/masctl` runs `switch`.";
    };

    settings = mkOption {
      description = ''
        masctl.toml, as Nix values (see masctl.example.toml in the source).
        Rendered to /etc/masctl/masctl.toml. Keys not declared here pass through
        as they are; masctl rejects unknown ones (at build time with checkConfig).
      '';
      default = { };
      example = literalExpression ''
        {
          server_name = "example.com";
          hostnames.matrix = "matrix.example.com";
          synapse.enable_registration = false;
          ports.synapse = "127.0.0.1:8008";
        }
      '';
      type = types.submodule {
        freeformType = settingsFormat.type;
        options = {
          server_name = mkOption {
            type = types.str;
            example = "example.com";
            description = "The Matrix server name: the part after `:` in user IDs.";
          };
          instance = mkOption {
            type = types.str;
            default = "masctl";
            description = "Names the containers (`<instance>-postgres`, `<instance>-synapse`) and the Docker network.";
          };
          state_root = mkOption {
            type = types.str;
            default = "/var/lib/masctl";
            description = "Store, generations, secrets and service data.";
          };
        };
      };
    };

    checkConfig = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Run `masctl config check` on the rendered file when the system is built.
        Turn it off if MASCTL_IMAGES (in `environment`) points outside the Nix
        store, where the build sandbox cannot read it.
      '';
    };

    environment = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        MASCTL_DEBIAN_MIRRORS = "http://mirror.example/debian";
        MASCTL_PYTHON_INDEX = "https://index.example/simple";
      };
      description = ''
        Extra environment for masctl-activate.service. A NixOS host has no apt
        sources and usually no pip configuration, so building masctl's own images
        needs MASCTL_DEBIAN_MIRRORS and MASCTL_PYTHON_INDEX here (images pinned by
        digest in settings.images need neither).
      '';
    };
  };

  config = mkIf cfg.enable {
    virtualisation.docker.enable = true;

    # `masctl status`, `generations`, `rollback` for the administrator; the
    # default config path is /etc/masctl/masctl.toml already.
    environment.systemPackages = [ cfg.package ];

    environment.etc."masctl/masctl.toml".source = configFile;

    systemd.services.masctl-activate = {
      description = "masctl: switch to the configured generation";
      wantedBy = [ "multi-user.target" ];
      requires = [ "docker.service" ];
      after = [
        "docker.service"
        "network-online.target"
      ];
      wants = [ "network-online.target" ];
      restartTriggers = [ configFile ];
      environment = {
        MASCTL_IMAGES = imagesDir;
      }
      // cfg.environment;
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = "${cfg.package}/bin/masctl -c /etc/masctl/masctl.toml switch";
      };
    };
  };
}
