# A stand-in for the few nixpkgs `lib` functions that nix/module.nix,
# nix/package.nix and flake.nix use, plus a very small module evaluator.
# flake.nix beside it serves it as the `nixpkgs` input when the tests override it.
#
# nixpkgs cannot be fetched on the machines this project is tested on, so this is
# what lets `nix-instantiate --eval` run the module at all. What it does:
#   - declared options get the user's definition, else their default, else an
#     error when read ("used but not defined"), as in NixOS;
#   - definitions are checked against simple type predicates (str, bool,
#     attrsOf, package, submodule with freeformType) and unknown options are
#     rejected;
#   - mkIf / mkDefault in the module's output are resolved;
#   - a wrapper module `{ imports = [ module ]; <definitions> }` (flake.nix's
#     nixosModules.default) is supported one level deep: its definitions count
#     as defaults that the user's definitions replace.
# What it does NOT do, and so does not prove:
#   - nixpkgs' real types, merging of several definitions, priorities beyond
#     "the user's definition beats mkDefault beats the option default", nested
#     imports, option documentation rendering;
#   - that the NixOS options the module sets (systemd.services.*, environment.etc,
#     virtualisation.docker.enable) exist or have those shapes: they are only
#     read back as plain values here;
#   - anything about pkgs: formats.toml does not render TOML, callPackage and
#     buildRustPackage make no derivations (see pkgs.nix).
# checks.<system>.module-eval in flake.nix does the real evaluation with nixpkgs.
let
  inherit (builtins)
    all
    attrNames
    concatStringsSep
    filter
    isAttrs
    isBool
    isFunction
    isString
    listToAttrs
    map
    mapAttrs
    ;

  isOption = v: isAttrs v && (v._type or null) == "option";
  isDerivation = v: isAttrs v && (v.type or null) == "derivation";

  mkType = name: check: { inherit name check; };

  types = {
    str = mkType "string" isString;
    bool = mkType "boolean" isBool;
    package = mkType "package" (v: isDerivation v || builtins.isPath v);
    attrs = mkType "attribute set" isAttrs;
    attrsOf = elem: mkType "attribute set of ${elem.name}" (v: isAttrs v && all (n: elem.check v.${n}) (attrNames v)) // { inherit elem; };
    # The module may be an attrset { options; freeformType; } only.
    submodule =
      module:
      if isFunction module then
        throw "stub lib: types.submodule with a function module is not supported"
      else
        {
          name = "submodule";
          check = isAttrs;
          inherit module;
        };
  };

  # Value of one declared option at `path` from the user's definition (if any).
  evalOption =
    path: opt: defined: value:
    if defined then
      checkType path opt.type value
    else if opt ? default then
      checkType path opt.type opt.default
    else
      throw "The option `${path}' is used but not defined.";

  checkType =
    path: type: value:
    if type.name == "submodule" then
      if !isAttrs value then
        throw "The option `${path}' is not of type `submodule'."
      else
        let
          declared = type.module.options or { };
          freeform = type.module.freeformType or null;
          extra = filter (n: !(declared ? ${n})) (attrNames value);
          extras = listToAttrs (
            map (n: {
              name = n;
              value =
                if freeform == null then
                  throw "The option `${path}.${n}' does not exist."
                else
                  checkType "${path}.${n}" freeform value.${n};
            }) extra
          );
        in
        extras // evalOptions path declared (builtins.intersectAttrs declared value)
    else if type.check value then
      value
    else
      throw "The option `${path}' is not of type `${type.name}'.";

  # Values for a tree of declared options, given the user's (nested) definitions.
  evalOptions =
    prefix: options: defs:
    let
      unknown = filter (n: !(options ? ${n})) (attrNames defs);
      at = n: if prefix == "" then n else "${prefix}.${n}";
    in
    if unknown != [ ] then
      throw "The option(s) ${concatStringsSep ", " (map at unknown)} do not exist."
    else
      mapAttrs (
        n: o:
        if isOption o then evalOption (at n) o (defs ? ${n}) defs.${n} else evalOptions (at n) o (defs.${n} or { })
      ) options;

  # b's values win; attrsets merge recursively, derivations are values.
  recursiveUpdate =
    a: b:
    a
    // mapAttrs (
      n: v:
      if isAttrs v && !(isDerivation v) && isAttrs (a.${n} or null) && !(isDerivation a.${n}) then
        recursiveUpdate a.${n} v
      else
        v
    ) b;

  # mkIf / mkDefault / mkMerge in a module's `config`, resolved to plain values.
  resolve =
    v:
    if !isAttrs v || isDerivation v then
      v
    else if (v._type or null) == "if" then
      (if v.condition then resolve v.content else { })
    else if (v._type or null) == "override" then
      resolve v.content
    else if (v._type or null) == "merge" then
      builtins.foldl' (a: b: a // resolve b) { } v.contents
    else
      mapAttrs (_: resolve) v;
in
rec {
  inherit types recursiveUpdate;

  mkOption = attrs: attrs // { _type = "option"; };
  mkEnableOption =
    name:
    mkOption {
      type = types.bool;
      default = false;
      description = "Whether to enable ${name}.";
    };
  mkIf = condition: content: {
    _type = "if";
    inherit condition content;
  };
  mkDefault = content: {
    _type = "override";
    priority = 1000;
    inherit content;
  };
  mkMerge = contents: {
    _type = "merge";
    inherit contents;
  };
  literalExpression = text: {
    _type = "literalExpression";
    inherit text;
  };

  # The real ones, re-implemented from their documented behaviour.
  importTOML = path: builtins.fromTOML (builtins.readFile path);
  genAttrs =
    names: f:
    listToAttrs (
      map (n: {
        name = n;
        value = f n;
      }) names
    );
  inherit (builtins) all elem;
  optionalString = cond: s: if cond then s else "";
  hasInfix = infix: s: builtins.match ".*${escapeRegex infix}.*" s != null;
  escapeRegex = builtins.replaceStrings [ "\\" "[" "]" "(" ")" "{" "}" "." "*" "+" "?" "^" "$" "|" ] [
    "\\\\"
    "\\["
    "\\]"
    "\\("
    "\\)"
    "\\{"
    "\\}"
    "\\."
    "\\*"
    "\\+"
    "\\?"
    "\\^"
    "\\$"
    "\\|"
  ];

  # lib.fileset: only checks that every listed path exists and lies under root
  # (maybeMissing drops a missing one).
  fileset = {
    unions = paths: filter (p: p != null) paths;
    maybeMissing = path: if builtins.pathExists path then path else null;
    toSource =
      { root, fileset }:
      let
        rootStr = toString root;
        bad = filter (
          p: !(builtins.pathExists p) || builtins.substring 0 (builtins.stringLength rootStr + 1) (toString p) != "${rootStr}/"
        ) fileset;
      in
      if bad != [ ] then
        throw "stub lib.fileset.toSource: missing or outside root: ${concatStringsSep ", " (map toString bad)}"
      else
        {
          _stub = "fileset.toSource";
          inherit root;
          files = map toString fileset;
        };
  };

  licenses.asl20 = {
    spdxId = "Apache-2.0";
  };
  platforms.linux = [
    "x86_64-linux"
    "aarch64-linux"
  ];

  # The evaluator: `module` is a NixOS module function, `config` the user's
  # definitions. Returns the option values the module sees and its resolved output.
  evalModule =
    {
      module,
      config,
      pkgs,
    }:
    let
      lib = import ./lib.nix;
      args = {
        config = values;
        inherit lib pkgs;
      };
      top = module args;
      # A module that declares options, or a wrapper importing exactly one.
      m =
        if top ? options then
          top
        else if builtins.length (top.imports or [ ]) == 1 then
          (import (builtins.head top.imports)) args
        else
          throw "stub lib.evalModule: expected a module with options or a wrapper importing one";
      wrapperDefs = if top ? options then { } else resolve (removeAttrs top [ "imports" ]);
      values = evalOptions "" m.options (recursiveUpdate wrapperDefs config);
    in
    {
      inherit values;
      options = m.options;
      output = resolve (m.config or { });
    };
}
