# checks.<system>.module-eval: evaluates nixosModules.default inside a real NixOS
# configuration (nixpkgs' module system, types and systemd unit generation) and
# checks what it produces. Evaluation only: the masctl package is replaced by a
# stand-in so this check does not build masctl (checks.unit-tests does), and no
# machine is booted, so it does not prove `masctl switch` works on NixOS.
{
  nixpkgs,
  pkgs,
  module,
}:

let
  inherit (pkgs) lib;

  stand-in = pkgs.writeShellScriptBin "masctl" "exit 0";

  eval = nixpkgs.lib.nixosSystem {
    modules = [
      module
      {
        nixpkgs.hostPlatform = pkgs.stdenv.hostPlatform.system;
        boot.isContainer = true;
        system.stateVersion = "25.11";
        services.masctl = {
          enable = true;
          package = stand-in;
          settings = {
            server_name = "example.com";
            hostnames.matrix = "matrix.example.com";
            synapse.enable_registration = false;
            postgres.settings.shared_buffers = "128MB";
            ports.synapse = "127.0.0.1:8008";
          };
          environment.MASCTL_DEBIAN_MIRRORS = "http://mirror.example/debian";
        };
      }
    ];
  };

  c = eval.config;
  opts = eval.options.services.masctl;
  svc = c.systemd.services.masctl-activate;
  execStart = svc.serviceConfig.ExecStart;

  facts = {
    options = builtins.attrNames opts;
    settingsOptions = builtins.attrNames (opts.settings.type.getSubOptions [ ]);
    docker = c.virtualisation.docker.enable;
    inherit execStart;
    type = svc.serviceConfig.Type;
    remain = svc.serviceConfig.RemainAfterExit;
    wantedBy = svc.wantedBy;
    requires = svc.requires;
    after = svc.after;
    etc = c.environment.etc ? "masctl/masctl.toml";
    settings = c.services.masctl.settings;
  };

  expect =
    what: ok:
    if ok then true else throw "module-eval: ${what}; got ${builtins.toJSON facts}";

  checked =
    expect "options enable/package/settings/environment" (
      lib.all (o: lib.elem o facts.options) [
        "enable"
        "package"
        "settings"
        "environment"
      ]
    )
    && expect "typed settings options" (
      lib.all (o: lib.elem o facts.settingsOptions) [
        "server_name"
        "instance"
        "state_root"
      ]
    )
    && expect "docker enabled" facts.docker
    && expect "ExecStart runs `masctl -c /etc/masctl/masctl.toml switch`" (
      execStart == "${stand-in}/bin/masctl -c /etc/masctl/masctl.toml switch"
    )
    && expect "oneshot with RemainAfterExit" (facts.type == "oneshot" && facts.remain)
    && expect "wanted by multi-user.target" (lib.elem "multi-user.target" facts.wantedBy)
    && expect "requires and is after docker.service" (
      lib.elem "docker.service" facts.requires && lib.elem "docker.service" facts.after
    )
    && expect "/etc/masctl/masctl.toml set" facts.etc
    && expect "defaults filled in" (
      facts.settings.instance == "masctl" && facts.settings.state_root == "/var/lib/masctl"
    );

  unitText = c.systemd.units."masctl-activate.service".text;
  toml = c.environment.etc."masctl/masctl.toml".source;
in
assert checked;
pkgs.runCommand "masctl-module-eval"
  {
    nativeBuildInputs = [ pkgs.python3 ];
    unit = pkgs.writeText "masctl-activate.service" unitText;
    inherit toml;
  }
  ''
    set -eu
    grep -qx 'ExecStart=${stand-in}/bin/masctl -c /etc/masctl/masctl.toml switch' "$unit"
    grep -qx 'RemainAfterExit=true' "$unit"
    grep -qx 'Type=oneshot' "$unit"
    grep -q '^X-Restart-Triggers=' "$unit"
    grep -qx 'Environment="MASCTL_DEBIAN_MIRRORS=http://mirror.example/debian"' "$unit"
    # The rendered file is TOML that says what was declared, defaults included.
    python3 - "$toml" <<'EOF'
    import sys, tomllib
    with open(sys.argv[1], "rb") as f:
        d = tomllib.load(f)
    assert d["server_name"] == "example.com", d
    assert d["instance"] == "masctl", d
    assert d["state_root"] == "/var/lib/masctl", d
    assert d["hostnames"]["matrix"] == "matrix.example.com", d
    assert d["synapse"]["enable_registration"] is False, d
    assert d["postgres"]["settings"]["shared_buffers"] == "128MB", d
    assert d["ports"]["synapse"] == "127.0.0.1:8008", d
    EOF
    touch $out
  ''
