# Evaluates one case of tests/nix/cases.nix: the nix-darwin module with
# nix-darwin's own modules/launchd, or the home-manager module with
# home-manager's launchd and systemd modules, on nixpkgs' lib.
#
#   nix-instantiate --eval --strict --json tests/nix/eval.nix \
#     --argstr nixpkgsLib $NIXPKGS_LIB --argstr nixDarwin $NIX_DARWIN \
#     --argstr homeManager $HOME_MANAGER --argstr configDir /tmp/x --argstr case darwin-default
#
# There is no nixpkgs here: `pkgs` is a stub with just what the modules
# touch. `pkgs.formats.toml {}`'s `generate` returns "<configDir>/<name>"
# instead of writing the file; the attrset fed to it is part of the output
# (`configs`), and run.sh writes it as TOML at that path so that
# `dockhand service print --config` reads the same settings.
{
  nixpkgsLib,
  nixDarwin ? null,
  homeManager ? null,
  configDir ? "/tmp/dockhand-nix-test",
  case,
}:

let
  nlib = import (nixpkgsLib + "/lib");
  cases = import ./cases.nix;
  c = cases.${case} or (throw "no case `${case}` in tests/nix/cases.nix");
  dlib = import ../../nix/lib.nix { lib = nlib; };

  fakePkg = name: {
    type = "derivation";
    inherit name;
    pname = name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    meta.mainProgram = name;
  };

  platforms = {
    darwin = {
      isDarwin = true;
      isLinux = false;
      system = "aarch64-darwin";
    };
    linux = {
      isDarwin = false;
      isLinux = true;
      system = "x86_64-linux";
    };
    freebsd = {
      isDarwin = false;
      isLinux = false;
      system = "x86_64-freebsd";
    };
  };

  pkgs = {
    stdenv = {
      hostPlatform = platforms.${c.host};
      inherit (platforms.${c.host}) isDarwin isLinux system;
      shell = "/bin/sh";
    };
    formats.toml = _: {
      type = nlib.types.attrsOf nlib.types.anything;
      generate = name: _value: "${configDir}/${name}";
    };
    writeText = name: _text: "/nix/store/00000000000000000000000000000000-${name}";
    writeScript = name: _text: "/nix/store/00000000000000000000000000000000-${name}";
    writeScriptBin = name: _text: fakePkg name;
    writeTextFile = a: "/nix/store/00000000000000000000000000000000-${a.name}";
    runCommand = name: _: _: fakePkg name;
    symlinkJoin = a: fakePkg a.name;
    emptyDirectory = fakePkg "empty";
    sd-switch = fakePkg "sd-switch";
    dockhand = fakePkg "dockhand";
    colima = fakePkg "colima";
    docker = fakePkg "docker";
    callPackage = _: _: throw "stub pkgs: callPackage is not available in the tests";
  };

  inherit (nlib) mkOption types;

  failedAssertions =
    cfg: map (a: a.message) (nlib.filter (a: !a.assertion) cfg.assertions);

  # Like nix-darwin's and home-manager's builds: fail with the messages of
  # the failed assertions.
  checked =
    cfg:
    let
      failed = failedAssertions cfg;
    in
    if failed != [ ] then
      throw "\nFailed assertions:\n${nlib.concatMapStringsSep "\n" (m: "- ${m}") failed}"
    else
      cfg;

  profilesOut =
    cfg: isDarwin:
    nlib.mapAttrs (name: p: {
      inherit (p) environment;
      config = dlib.configFor name p.settings;
      configFile = "${configDir}/${dlib.configFileName name}";
    }) (nlib.filterAttrs (_: p: p.enable) cfg.profiles);

  # ------------------------------------------------------------ nix-darwin

  darwinStubs = {
    options = nlib.recursiveUpdate {
      assertions = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      warnings = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      environment.systemPackages = mkOption {
        type = types.listOf types.package;
        default = [ ];
      };
      # Declared by nix-darwin's modules/system/launchd.nix, which needs
      # the whole activation machinery; the launchd module only fills them.
      environment.launchAgents = mkOption {
        type = types.attrsOf types.unspecified;
        default = { };
      };
      environment.launchDaemons = mkOption {
        type = types.attrsOf types.unspecified;
        default = { };
      };
      environment.userLaunchAgents = mkOption {
        type = types.attrsOf types.unspecified;
        default = { };
      };
      # Declared by nix-darwin's activation machinery; the module adds to
      # preActivation and reads the launchd build's path.
      system.activationScripts = mkOption {
        type = types.attrsOf types.unspecified;
        default = { };
      };
      system.build = mkOption {
        type = types.attrsOf types.unspecified;
        default = { };
      };
    }
    # nix-darwin >= 25.05 declares system.primaryUser in
    # modules/system/primary-user.nix (same type and default); older
    # checkouts lack it, so declare it here when missing.
    (nlib.optionalAttrs (!(builtins.pathExists (nixDarwin + "/modules/system/primary-user.nix"))) {
      system.primaryUser = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
    });
  };

  darwinPrimaryUserModule = nixDarwin + "/modules/system/primary-user.nix";

  evalDarwin = nlib.evalModules {
    modules = [
      (nixDarwin + "/modules/launchd")
      darwinStubs
      { system.build.launchd = "/nix/store/00000000000000000000000000000000-launchd"; }
      ../../nix/darwin-module.nix
      { _module.args.pkgs = pkgs; }
      c.config
    ]
    ++ nlib.optional (builtins.pathExists darwinPrimaryUserModule) darwinPrimaryUserModule;
  };

  darwinOut =
    let
      cfg = checked evalDarwin.config;
      dd = cfg.virtualisation.docker-darwin;
    in
    {
      agents = nlib.mapAttrs (_: a: dlib.clean a.serviceConfig) cfg.launchd.user.agents;
      systemPackages = map (p: p.name) cfg.environment.systemPackages;
      profiles = if dd.enable then profilesOut dd true else { };
      home = "/Users/${cfg.system.primaryUser}";
      user = cfg.system.primaryUser;
      # The activation asks the running supervisor to hand its engine over
      # before a changed agent is reloaded.
      preparesRestart = nlib.hasInfix "dockhand service prepare-restart --profile default" (
        cfg.system.activationScripts.preActivation.text or ""
      );
      # The activation text the module adds (checked with `contains`).
      activation = cfg.system.activationScripts.preActivation.text or "";
    };

  # ---------------------------------------------------------- home-manager

  hmLib = import (homeManager + "/modules/lib/stdlib-extended.nix") nlib;

  hmStubs = {
    options = {
      assertions = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      warnings = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      meta.maintainers = mkOption {
        type = types.listOf types.unspecified;
        default = [ ];
      };
      home.username = mkOption { type = types.str; };
      home.homeDirectory = mkOption { type = types.str; };
      home.packages = mkOption {
        type = types.listOf types.package;
        default = [ ];
      };
      home.sessionVariables = mkOption {
        type = types.attrsOf types.str;
        default = { };
      };
      home.activation = mkOption {
        type = types.attrsOf types.unspecified;
        default = { };
      };
      home.extraBuilderCommands = mkOption {
        type = types.lines;
        default = "";
      };
      xdg.configHome = mkOption {
        type = types.str;
        default = "/home/alice/.config";
      };
      xdg.configFile = mkOption {
        type = types.attrsOf types.unspecified;
        default = { };
      };
      xdg.dataFile = mkOption {
        type = types.attrsOf types.unspecified;
        default = { };
      };
    };
  };

  evalHm = hmLib.evalModules {
    modules = [
      (homeManager + "/modules/launchd/default.nix")
      (homeManager + "/modules/systemd.nix")
      hmStubs
      ../../nix/hm-module.nix
      { _module.args.pkgs = pkgs; }
      c.config
    ];
  };

  hmOut =
    let
      cfg = checked evalHm.config;
      d = cfg.services.dockhand;
      isDarwin = pkgs.stdenv.isDarwin;
    in
    {
      agents = nlib.mapAttrs (_: a: dlib.clean a.config) (nlib.filterAttrs (_: a: a.enable) cfg.launchd.agents);
      units = nlib.mapAttrs (_: u: dlib.clean (removeUnsetFields u)) cfg.systemd.user.services;
      sockets = nlib.mapAttrs (_: u: dlib.clean (removeUnsetFields u)) cfg.systemd.user.sockets;
      packages = map (p: p.name) cfg.home.packages;
      sessionVariables = cfg.home.sessionVariables;
      profiles = if d.enable then profilesOut d isDarwin else { };
      home = cfg.home.homeDirectory;
      user = cfg.home.username;
      preparesRestart = nlib.hasInfix "dockhand service prepare-restart --profile default" (
        (cfg.home.activation.dockhandPrepareRestart or { }).data or ""
      );
      activation = nlib.concatMapStrings (e: (cfg.home.activation.${e} or { }).data or "") [
        "dockhandLogDirs"
        "dockhandPrepareRestart"
      ];
    };

  # home-manager drops fields that are null or [] and then empty sections
  # (modules/systemd.nix, finalUnit); do the same.
  removeUnsetFields =
    u:
    nlib.filterAttrs (_: s: s != { }) (
      nlib.mapAttrs (_: s: nlib.filterAttrs (_: v: v != null && v != [ ]) s) (removeAttrs u [ "_module" ])
    );
in
{
  inherit (c) kind host;
}
// (if c.kind == "darwin" then darwinOut else hmOut)
