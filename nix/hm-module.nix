# home-manager module: `services.dockhand.enable = true;` runs dockhand's
# supervisor at login, as a launchd agent on macOS (Colima) and as a systemd
# user unit on Linux (dockerd), with the same keys and values as
# `dockhand service print --platform launchd|systemd`.
# The shared logic lives in ./lib.nix.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.dockhand;
  dlib = import ./lib.nix { inherit lib; };
  opt = "services.dockhand";

  inherit (pkgs.stdenv.hostPlatform) isDarwin isLinux;

  tomlFormat = pkgs.formats.toml { };

  home = config.home.homeDirectory;
  user = config.home.username;

  enabledProfiles = lib.filterAttrs (_: p: p.enable) cfg.profiles;

  packages = [
    cfg.package
    cfg.colimaPackage
    cfg.dockerPackage
  ];

  path = dlib.pathFor {
    inherit packages;
    tail = dlib.pathTail { inherit user home; };
  };

  common = name: p: {
    inherit name path;
    inherit (p) settings environment;
    exe = lib.getExe' cfg.package "dockhand";
    configFile = tomlFormat.generate (dlib.configFileName name) (dlib.configFor name p.settings);
  };

  agentFor = name: p: {
    name = dlib.unitName name;
    value = {
      enable = true;
      config = dlib.launchdServiceConfig (common name p // { inherit home; });
    };
  };

  unitFor = name: p: {
    name = dlib.unitName name;
    value = dlib.systemdService (common name p);
  };

  dockerHostProfile = cfg.profiles.${cfg.dockerHost} or null;

  configHomeRel = lib.removePrefix home config.xdg.configHome;

  # Activation lines for every enabled profile whose agent / unit file
  # (`file name p`) changes from `old f` to `new f`.
  prepareAll =
    file: new: old:
    lib.concatStrings (
      lib.mapAttrsToList (
        name: p:
        let
          c = common name p;
          f = file name p;
        in
        dlib.prepareRestartScript {
          inherit name;
          inherit (c) exe configFile environment;
          old = old f;
          new = new f;
          prefix = "\${DRY_RUN_CMD:-} ";
        }
      ) enabledProfiles
    );
in
{
  options.services.dockhand = {
    enable = lib.mkOption {
      type = lib.types.bool;
      default = false;
      example = true;
      description = ''
        Whether to keep a Docker engine ready while you are logged in:
        dockhand supervises Colima (macOS) or dockerd (Linux), restarts it
        with backoff when it dies or hangs, and stops it gracefully at
        logout. It runs as the launchd agent `dockhand-<profile>` (label
        `local.docker`) on macOS and the systemd user unit
        `dockhand-<profile>.service` on Linux.
      '';
    };

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.dockhand or (pkgs.callPackage ./package.nix { });
      defaultText = lib.literalExpression "pkgs.dockhand";
      description = "The dockhand package.";
    };

    colimaPackage = lib.mkOption {
      type = lib.types.nullOr lib.types.package;
      default = if isDarwin then pkgs.colima else null;
      defaultText = lib.literalExpression "if pkgs.stdenv.hostPlatform.isDarwin then pkgs.colima else null";
      description = "The Colima package (installed and first on the service's PATH); `null` for none.";
    };

    dockerPackage = lib.mkOption {
      type = lib.types.nullOr lib.types.package;
      default = pkgs.docker;
      defaultText = lib.literalExpression "pkgs.docker";
      description = ''
        The docker package (the CLI; on Linux also dockerd, which the
        `dockerd` engine runs), installed and on the service's PATH; `null`
        for none, for example when dockerd comes from the system.
      '';
    };

    profiles = lib.mkOption {
      type = lib.types.attrsOf (
        lib.types.submodule (dlib.profileOptions {
          platformText = "The engine defaults to `colima` on macOS and `dockerd` on Linux.";
        })
      );
      default = { };
      example = lib.literalExpression ''
        {
          default.settings.stop_timeout = "90s";
          podman.settings = {
            engine = "command";
            socket = "/run/user/1000/podman/podman.sock";
            command.argv = [ "podman" "system" "service" "--time=0" "unix:///run/user/1000/podman/podman.sock" ];
          };
        }
      '';
      description = ''
        dockhand profiles, each supervised by its own service
        (`dockhand-<name>`). The `default` profile is defined when
        {option}`services.dockhand.enable` is set.
      '';
    };

    dockerHost = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "default";
      description = ''
        Name of a profile whose Docker API socket `DOCKER_HOST` points at
        (`unix://<socket>`, set in {option}`home.sessionVariables`), so that
        the docker CLI and other clients use that engine whatever the
        current docker context is. `null` leaves `DOCKER_HOST` alone (Colima
        still makes its own docker context current).
      '';
    };
  };

  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        assertions = [
          {
            assertion = isDarwin || isLinux;
            message = "${opt}: dockhand runs as a launchd agent (macOS) or a systemd user unit (Linux); this host is neither.";
          }
          {
            assertion = cfg.dockerHost != null -> (dockerHostProfile != null && dockerHostProfile.enable);
            message = "${opt}.dockerHost = \"${toString cfg.dockerHost}\" names no enabled profile of ${opt}.profiles.";
          }
        ]
        ++ dlib.profileAssertions {
          prefix = opt;
          inherit isDarwin;
          profiles = cfg.profiles;
        };

        services.dockhand.profiles.default = { };

        home.packages = lib.filter (p: p != null) packages;

        home.sessionVariables = lib.mkIf (cfg.dockerHost != null && dockerHostProfile != null) {
          DOCKER_HOST = "unix://${
            dlib.clientSocketFor {
              name = cfg.dockerHost;
              inherit (dockerHostProfile) settings environment;
              inherit home isDarwin;
            }
          }";
        };
      }

      (lib.mkIf isDarwin {
        launchd.agents = lib.mapAttrs' agentFor enabledProfiles;
        # home-manager's setupLaunchAgents boots out a changed agent and
        # bootstraps the new one (modules/launchd/default.nix): the running
        # supervisor first learns that this is a restart, and hands a
        # healthy engine over.
        home.activation.dockhandPrepareRestart = lib.hm.dag.entryBetween [ "setupLaunchAgents" ] [
          "writeBoundary"
        ] (prepareAll (name: p: "${dlib.labelFor name p.settings}.plist") (f: "$newGenPath/LaunchAgents/${f}") (f: "${home}/Library/LaunchAgents/${f}"));
        # launchd may not create StandardOutPath's directory: before the
        # agents are (re)loaded.
        home.activation.dockhandLogDirs = lib.hm.dag.entryBetween [ "setupLaunchAgents" ] [ "writeBoundary" ] (
          lib.concatStrings (
            lib.mapAttrsToList (
              name: p:
              dlib.logDirScript {
                dir = dlib.launchdLogDirFor {
                  inherit name home;
                  inherit (p) settings;
                };
                prefix = "\${DRY_RUN_CMD:-} ";
              }
            ) enabledProfiles
          )
        );
      })

      (lib.mkIf isLinux {
        systemd.user.services = lib.mapAttrs' unitFor enabledProfiles;
        systemd.user.sockets = lib.mapAttrs' (name: p: {
          name = dlib.unitName name;
          value = dlib.systemdSocket {
            inherit name home;
            inherit (p) settings;
          };
        }) (lib.filterAttrs (_: p: p.settings.listen != null) enabledProfiles);
        # sd-switch restarts a changed unit (modules/systemd.nix,
        # reloadSystemd): a `restart` job, which dockhand recognises by
        # itself; the request covers a stop-and-start as well.
        home.activation.dockhandPrepareRestart = lib.hm.dag.entryBetween [ "reloadSystemd" ] [
          "linkGeneration"
        ] (prepareAll (name: _: "${dlib.unitName name}.service") (f: "$newGenPath/home-files${configHomeRel}/systemd/user/${f}") (f: "\${oldGenPath:-/nonexistent}/home-files${configHomeRel}/systemd/user/${f}"));
      })
    ]
  );
}
