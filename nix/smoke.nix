# checks.<system>.smoke: the installed package as a user gets it. The binary
# runs, finds its image declarations in share/masctl/images by itself, accepts
# masctl.example.toml and rejects a broken config with file:line; the unit
# templates, completions and man page are where they should be. Needs no Docker
# or systemd (`config check` touches no host state).
{
  runCommand,
  masctl,
}:

runCommand "masctl-smoke" { nativeBuildInputs = [ masctl ]; } ''
  set -eu
  cd "$TMPDIR"
  masctl --version
  test -f ${masctl}/share/masctl/images/base.toml
  test -f ${masctl}/share/masctl/units/masctl.target
  test -f ${masctl}/share/masctl/units/masctl-service.service
  ls ${masctl}/share/man/man1/masctl.1*
  ls ${masctl}/share/bash-completion/completions/masctl*
  test -f ${masctl}/share/zsh/site-functions/_masctl
  ls ${masctl}/share/fish/vendor_completions.d/masctl*

  # No --images: masctl must find <prefix>/share/masctl/images on its own.
  masctl --config ${../masctl.example.toml} config check

  printf 'server_name = "example.com"\nbogus = 1\n' > bad.toml
  if masctl --config bad.toml config check 2> err; then
    echo "a config with an unknown key passed the check" >&2
    exit 1
  fi
  grep -q 'bad.toml:2:1' err
  touch $out
''
