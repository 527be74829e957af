# nix-darwin module: `virtualisation.docker-darwin.enable = true;` gives the
# primary user a Docker engine (Colima) after every login, kept ready by
# dockhand running as a launchd user agent.
#
# The agent's keys and values are the ones `dockhand service print
# --platform launchd` emits (tests/nix/run.sh checks that they stay equal);
# the shared logic lives in ./lib.nix.
{
  config,
  lib,
  options,
  pkgs,
  ...
}:

let
  cfg = config.virtualisation.docker-darwin;
  dlib = import ./lib.nix { inherit lib; };
  opt = "virtualisation.docker-darwin";

  tomlFormat = pkgs.formats.toml { };

  hasPrimaryUser = options ? system && options.system ? primaryUser;
  user = if hasPrimaryUser then config.system.primaryUser else null;

  home =
    let
      u = (config.users.users or { }).${user} or { };
    in
    if u.home or null != null then toString u.home else "/Users/${user}";

  enabledProfiles = lib.filterAttrs (_: p: p.enable) cfg.profiles;

  path = dlib.pathFor {
    packages = [
      cfg.package
      cfg.colimaPackage
      cfg.dockerPackage
    ];
    tail = dlib.pathTail { inherit user home; };
  };

  agentFor = name: p: {
    name = dlib.darwinAgentName name;
    value.serviceConfig = dlib.launchdServiceConfig {
      inherit name home path;
      inherit (p) settings environment;
      exe = lib.getExe' cfg.package "dockhand";
      configFile = tomlFormat.generate (dlib.configFileName name) (dlib.configFor name p.settings);
    };
  };
in
{
  options.virtualisation.docker-darwin = {
    enable = lib.mkOption {
      type = lib.types.bool;
      default = false;
      example = true;
      description = ''
        Whether to run a Docker engine for the primary user
        ({option}`system.primaryUser`), like `virtualisation.docker.enable`
        on NixOS.

        This puts dockhand, Colima and the docker CLI on the system PATH and
        defines the launchd user agent `docker-darwin` (label `local.docker`)
        running `dockhand run`: dockhand starts Colima at login, keeps its VM
        answering, restarts it with backoff when it dies or hangs, and stops
        it gracefully at logout. `docker` then works with no further setup
        (Colima makes its docker context current).

        More engines or VMs: {option}`virtualisation.docker-darwin.profiles`.
      '';
    };

    logFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      example = "/Users/alice/Library/Logs/dockhand/default.log";
      description = ''
        dockhand's log file for the `default` profile (rotated by size);
        launchd's stdout/stderr of the agent go next to it, with `.log`
        replaced by `.launchd.log`.

        `null` means dockhand's per-user default,
        {file}`~/Library/Logs/dockhand/default.log`. The default is
        deliberately not under {file}`/tmp`: anyone on the machine can
        create a file or a symlink there before the agent starts, and
        then read the log or make the agent write (as you) wherever the
        link points.
      '';
    };

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.dockhand or (pkgs.callPackage ./package.nix { });
      defaultText = lib.literalExpression "pkgs.dockhand";
      description = "The dockhand package.";
    };

    colimaPackage = lib.mkOption {
      type = lib.types.package;
      default = pkgs.colima;
      defaultText = lib.literalExpression "pkgs.colima";
      description = "The Colima package dockhand drives (its `bin` is first on the agent's PATH).";
    };

    dockerPackage = lib.mkOption {
      type = lib.types.package;
      default = pkgs.docker;
      defaultText = lib.literalExpression "pkgs.docker";
      description = "The docker CLI put on the system PATH and the agent's PATH.";
    };

    profiles = lib.mkOption {
      type = lib.types.attrsOf (
        lib.types.submodule (dlib.profileOptions {
          platformText = "On macOS the engine defaults to `colima`.";
        })
      );
      default = { };
      example = lib.literalExpression ''
        {
          default.settings.colima = { cpu = 4; memory = 8; vm_type = "vz"; };
          arm.settings.colima = { arch = "aarch64"; disk = 200; };
        }
      '';
      description = ''
        dockhand profiles, each supervised by its own launchd user agent:
        `docker-darwin` (label `local.docker`) for `default`,
        `docker-darwin-<name>` (label `local.docker.<name>`) for the others.
        The `default` profile is defined when
        {option}`virtualisation.docker-darwin.enable` is set.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = pkgs.stdenv.hostPlatform.isDarwin;
        message = "${opt}.enable: this module runs Colima through a launchd user agent and works on macOS (darwin) only; on NixOS use virtualisation.docker.enable, on other Linux systems home-manager's services.dockhand.";
      }
      {
        assertion = hasPrimaryUser && config.system.primaryUser != null;
        message = "${opt}.enable: the Docker engine runs as a launchd user agent of `system.primaryUser`; set system.primaryUser = \"<your user name>\"; (needs nix-darwin 25.05 or newer).";
      }
    ]
    ++ dlib.profileAssertions {
      prefix = opt;
      isDarwin = true;
      profiles = cfg.profiles;
    };

    virtualisation.docker-darwin.profiles.default = {
      settings.log_file = lib.mkIf (cfg.logFile != null) (lib.mkDefault (toString cfg.logFile));
    };

    environment.systemPackages = [
      cfg.package
      cfg.colimaPackage
      cfg.dockerPackage
    ];

    launchd.user.agents = lib.mapAttrs' agentFor enabledProfiles;

    # nix-darwin's userLaunchd activation unloads a changed agent and loads
    # the new one (modules/system/launchd.nix): before that, the running
    # supervisor learns that this is a restart and hands a healthy engine
    # over (preActivation runs first in `activate`).
    # The agent's log directory is created first (launchd may not create
    # StandardOutPath's directory). The installed plist is compared under
    # `~user`, as nix-darwin's userLaunchd does.
    system.activationScripts.preActivation.text = lib.concatStrings (
      lib.mapAttrsToList (
        name: p:
        let
          target = "${dlib.labelFor name p.settings}.plist";
          asUser = "sudo --user=${user} -- ";
        in
        dlib.logDirScript {
          dir = dlib.launchdLogDirFor {
            inherit name home;
            inherit (p) settings;
          };
          prefix = asUser;
        }
        + dlib.prepareRestartScript {
          inherit name;
          inherit (p) environment;
          exe = lib.getExe' cfg.package "dockhand";
          configFile = tomlFormat.generate (dlib.configFileName name) (dlib.configFor name p.settings);
          new = "${config.system.build.launchd}/user/Library/LaunchAgents/${target}";
          old = "~${user}/Library/LaunchAgents/${target}";
          prefix = "${asUser}env HOME=${home} ";
        }
      ) enabledProfiles
    );
  };
}
