# Module evaluation cases, run by tests/nix/run.sh through eval.nix.
#
#   kind:   "darwin" (nix-darwin module) or "hm" (home-manager module)
#   host:   "darwin", "linux" or "freebsd" (pkgs.stdenv.hostPlatform)
#   config: the test's own module
#   expect: "ok" or "fail"
#   error:  for "fail", text the evaluation error must contain
#   check:  for "ok", leaf values the output (see eval.nix) must have, as
#           { "json.path" = value; } (a value of null: the key is absent)
#   contains: for "ok", { "json.path" = [ text ... ]; }: the string at
#           that path contains each text (activation scripts)
#   compare: for "ok", compare every agent/unit with `dockhand service print`
{
  # --------------------------------------------------------- nix-darwin

  darwin-default = {
    kind = "darwin";
    host = "darwin";
    expect = "ok";
    compare = true;
    config = {
      system.primaryUser = "alice";
      virtualisation.docker-darwin.enable = true;
    };
    # The log directory is created as the user, and the installed plist
    # compared under ~alice as nix-darwin's userLaunchd does.
    contains."activation" = [
      "sudo --user=alice -- mkdir -p -m 700 /Users/alice/Library/Logs/dockhand"
      "[[ -f ~alice/Library/LaunchAgents/local.docker.plist ]]"
      "cmp -s /nix/store/00000000000000000000000000000000-launchd/user/Library/LaunchAgents/local.docker.plist ~alice/Library/LaunchAgents/local.docker.plist"
    ];
    check = {
      "preparesRestart" = true;
      "agents.docker-darwin.Label" = "local.docker";
      "agents.docker-darwin.ProgramArguments" = [
        "/nix/store/00000000000000000000000000000000-dockhand/bin/dockhand"
        "run"
        "--profile"
        "default"
        "--config"
        "/tmp/dockhand-nix-test/dockhand-default.toml"
      ];
      "agents.docker-darwin.RunAtLoad" = true;
      "agents.docker-darwin.KeepAlive" = {
        SuccessfulExit = false;
        Crashed = true;
      };
      "agents.docker-darwin.ThrottleInterval" = 30;
      "agents.docker-darwin.AbandonProcessGroup" = true;
      "agents.docker-darwin.ExitTimeOut" = 75;
      "agents.docker-darwin.ProcessType" = "Standard";
      "agents.docker-darwin.Nice" = null;
      "agents.docker-darwin.Program" = null;
      "agents.docker-darwin.EnvironmentVariables" = {
        DOCKHAND_SUPERVISED_BY = "launchd";
        HOME = "/Users/alice";
        PATH = "/nix/store/00000000000000000000000000000000-dockhand/bin:/nix/store/00000000000000000000000000000000-colima/bin:/nix/store/00000000000000000000000000000000-docker/bin:/run/current-system/sw/bin:/etc/profiles/per-user/alice/bin:/Users/alice/.nix-profile/bin:/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
      };
      "agents.docker-darwin.StandardOutPath" = "/Users/alice/Library/Logs/dockhand/default.launchd.log";
      "agents.docker-darwin.StandardErrorPath" = "/Users/alice/Library/Logs/dockhand/default.launchd.log";
      "profiles.default.config" = {
        profiles.default = { };
      };
      "systemPackages" = [
        "dockhand"
        "colima"
        "docker"
      ];
    };
  };

  darwin-profiles = {
    kind = "darwin";
    host = "darwin";
    expect = "ok";
    compare = true;
    config = {
      system.primaryUser = "alice";
      virtualisation.docker-darwin = {
        enable = true;
        logFile = "/Users/alice/logs/docker.log";
        profiles.default.settings = {
          stop_timeout = "2m";
          probe_interval = 10; # an integer means seconds
          colima = {
            cpu = 4;
            memory = 8;
            vm_type = "vz";
            mounts = [ "~/src:w" ];
          };
        };
        profiles.work = {
          environment.COLIMA_HOME = "/Users/alice/.config/colima";
          settings = {
            label = "com.example.docker.work";
            log_file = "~/work-docker";
            engine = "colima";
            stop_timeout = "1m 30s";
            colima.profile = "work";
          };
        };
        profiles.off.enable = false;
      };
    };
    # prepare-restart runs with the profile's environment.
    contains."activation" = [
      "COLIMA_HOME=/Users/alice/.config/colima"
      "~alice/Library/LaunchAgents/com.example.docker.work.plist"
    ];
    check = {
      "agents.docker-darwin.ExitTimeOut" = 135;
      "agents.docker-darwin.StandardOutPath" = "/Users/alice/logs/docker.launchd.log";
      "profiles.default.config.profiles.default" = {
        log_file = "/Users/alice/logs/docker.log";
        stop_timeout = "2m";
        probe_interval = "10s";
        colima = {
          cpu = 4;
          memory = 8;
          vm_type = "vz";
          mounts = [ "~/src:w" ];
        };
      };
      "agents.docker-darwin-work.Label" = "com.example.docker.work";
      "agents.docker-darwin-work.ExitTimeOut" = 105;
      "agents.docker-darwin-work.StandardErrorPath" = "/Users/alice/work-docker.launchd.log";
      "agents.docker-darwin-work.EnvironmentVariables.COLIMA_HOME" = "/Users/alice/.config/colima";
      "agents.docker-darwin-work.ProgramArguments" = [
        "/nix/store/00000000000000000000000000000000-dockhand/bin/dockhand"
        "run"
        "--profile"
        "work"
        "--config"
        "/tmp/dockhand-nix-test/dockhand-work.toml"
      ];
      "agents.docker-darwin-off" = null;
    };
  };

  darwin-disabled = {
    kind = "darwin";
    host = "darwin";
    expect = "ok";
    config = {
      system.primaryUser = "alice";
      virtualisation.docker-darwin.enable = false;
      virtualisation.docker-darwin.profiles.extra.settings.colima.cpu = 2;
    };
    check = {
      "agents" = { };
      "systemPackages" = [ ];
    };
  };

  darwin-linux-host = {
    kind = "darwin";
    host = "linux";
    expect = "fail";
    config = {
      system.primaryUser = "alice";
      virtualisation.docker-darwin.enable = true;
    };
    error = "virtualisation.docker-darwin.enable: this module runs Colima through a launchd user agent and works on macOS (darwin) only";
  };

  darwin-no-primary-user = {
    kind = "darwin";
    host = "darwin";
    expect = "fail";
    config = {
      virtualisation.docker-darwin.enable = true;
    };
    error = "user agent of `system.primaryUser`; set system.primaryUser";
  };

  darwin-unknown-key = {
    kind = "darwin";
    host = "darwin";
    expect = "fail";
    config = {
      system.primaryUser = "alice";
      virtualisation.docker-darwin.enable = true;
      virtualisation.docker-darwin.profiles.default.settings.stop_timout = "60s";
    };
    error = "virtualisation.docker-darwin.profiles.default.settings.stop_timout' does not exist";
  };

  darwin-wrong-type = {
    kind = "darwin";
    host = "darwin";
    expect = "fail";
    config = {
      system.primaryUser = "alice";
      virtualisation.docker-darwin.enable = true;
      virtualisation.docker-darwin.profiles.default.settings.colima.cpu = "four";
    };
    error = "virtualisation.docker-darwin.profiles.default.settings.colima.cpu' is not of type";
  };

  darwin-unsafe-label = {
    kind = "darwin";
    host = "darwin";
    expect = "fail";
    config = {
      system.primaryUser = "alice";
      virtualisation.docker-darwin.enable = true;
      virtualisation.docker-darwin.profiles.default.settings.label = "../../escaped/evil";
    };
    error = "virtualisation.docker-darwin.profiles.default.settings.label: a label may only contain";
  };

  darwin-bad-duration = {
    kind = "darwin";
    host = "darwin";
    expect = "fail";
    config = {
      system.primaryUser = "alice";
      virtualisation.docker-darwin.enable = true;
      virtualisation.docker-darwin.profiles.default.settings.stop_timeout = "soon";
    };
    error = "virtualisation.docker-darwin.profiles.default.settings.stop_timeout' is not of type";
  };

  darwin-engine-table-mismatch = {
    kind = "darwin";
    host = "darwin";
    expect = "fail";
    config = {
      system.primaryUser = "alice";
      virtualisation.docker-darwin.enable = true;
      virtualisation.docker-darwin.profiles.default.settings = {
        engine = "colima";
        dockerd.args = [ "--debug" ];
      };
    };
    error = "virtualisation.docker-darwin.profiles.default.settings.dockerd is set but the profile's engine is \"colima\"";
  };

  # ------------------------------------------------------- home-manager

  hm-darwin-default = {
    kind = "hm";
    host = "darwin";
    expect = "ok";
    compare = true;
    config = {
      home.username = "alice";
      home.homeDirectory = "/Users/alice";
      services.dockhand.enable = true;
      services.dockhand.dockerHost = "default";
    };
    contains."activation" = [
      "mkdir -p -m 700 /Users/alice/Library/Logs/dockhand"
      "prepare-restart"
    ];
    check = {
      "preparesRestart" = true;
      "agents.dockhand-default.Label" = "local.docker";
      "agents.dockhand-default.ExitTimeOut" = 75;
      "agents.dockhand-default.StandardOutPath" = "/Users/alice/Library/Logs/dockhand/default.launchd.log";
      "units" = { };
      "sessionVariables.DOCKER_HOST" = "unix:///Users/alice/.colima/default/docker.sock";
      "packages" = [
        "dockhand"
        "colima"
        "docker"
      ];
    };
  };

  hm-linux-default = {
    kind = "hm";
    host = "linux";
    expect = "ok";
    compare = true;
    config = {
      home.username = "alice";
      home.homeDirectory = "/home/alice";
      services.dockhand.enable = true;
      services.dockhand.dockerHost = "default";
      services.dockhand.profiles.default.settings.stop_timeout = "30s";
    };
    check = {
      "preparesRestart" = true;
      "agents" = { };
      "units.dockhand-default.Service.Type" = "notify";
      "units.dockhand-default.Service.ExecStart" = [
        "/nix/store/00000000000000000000000000000000-dockhand/bin/dockhand run --profile default --config /tmp/dockhand-nix-test/dockhand-default.toml"
      ];
      "units.dockhand-default.Service.TimeoutStopSec" = "45s";
      "units.dockhand-default.Service.TimeoutStartSec" = "210s";
      "units.dockhand-default.Service.KillMode" = "process";
      "units.dockhand-default.Install.WantedBy" = [ "default.target" ];
      "sessionVariables.DOCKER_HOST" = "unix:///home/alice/.local/state/dockhand/default/docker.sock";
      "packages" = [
        "dockhand"
        "docker"
      ];
    };
  };

  # A profile whose environment moves dockhand's state: prepare-restart
  # gets that environment, or it finds no supervisor to hand over.
  hm-linux-environment = {
    kind = "hm";
    host = "linux";
    expect = "ok";
    config = {
      home.username = "alice";
      home.homeDirectory = "/home/alice";
      services.dockhand.enable = true;
      services.dockhand.profiles.default.environment.XDG_STATE_HOME = "/home/alice/state";
    };
    check."units.dockhand-default.Service.Type" = "notify";
    contains."activation" = [
      "XDG_STATE_HOME=/home/alice/state"
      "prepare-restart"
    ];
  };

  hm-linux-command = {
    kind = "hm";
    host = "linux";
    expect = "ok";
    compare = true;
    config = {
      home.username = "alice";
      home.homeDirectory = "/home/alice";
      services.dockhand = {
        enable = true;
        dockerHost = "podman";
        profiles.podman.settings = {
          engine = "command";
          socket = "~/podman.sock";
          start_timeout = "1m";
          command.argv = [
            "podman"
            "system"
            "service"
            "--time=0"
            "unix:///home/alice/podman.sock"
          ];
        };
      };
    };
    check = {
      "units.dockhand-podman.Service.TimeoutStartSec" = "90s";
      "units.dockhand-podman.Unit.Description" = "dockhand: Docker engine supervisor (profile podman)";
      "sessionVariables.DOCKER_HOST" = "unix:///home/alice/podman.sock";
    };
  };

  hm-disabled = {
    kind = "hm";
    host = "linux";
    expect = "ok";
    config = {
      home.username = "alice";
      home.homeDirectory = "/home/alice";
      services.dockhand.enable = false;
      services.dockhand.profiles.default.settings.stop_timeout = "30s";
    };
    check = {
      "agents" = { };
      "units" = { };
      "packages" = [ ];
      "sessionVariables" = { };
    };
  };

  hm-bad-host = {
    kind = "hm";
    host = "freebsd";
    expect = "fail";
    config = {
      home.username = "alice";
      home.homeDirectory = "/home/alice";
      services.dockhand.enable = true;
    };
    error = "services.dockhand: dockhand runs as a launchd agent (macOS) or a systemd user unit (Linux); this host is neither.";
  };

  hm-unknown-key = {
    kind = "hm";
    host = "linux";
    expect = "fail";
    config = {
      home.username = "alice";
      home.homeDirectory = "/home/alice";
      services.dockhand.enable = true;
      services.dockhand.profiles.default.settings.dockerd.extra_args = [ "--debug" ];
    };
    error = "services.dockhand.profiles.default.settings.dockerd.extra_args' does not exist";
  };

  hm-wrong-type = {
    kind = "hm";
    host = "linux";
    expect = "fail";
    config = {
      home.username = "alice";
      home.homeDirectory = "/home/alice";
      services.dockhand.enable = true;
      services.dockhand.profiles.default.settings.dockerd.args = "--debug";
    };
    error = "services.dockhand.profiles.default.settings.dockerd.args' is not of type";
  };

  hm-docker-host-unknown-profile = {
    kind = "hm";
    host = "darwin";
    expect = "fail";
    config = {
      home.username = "alice";
      home.homeDirectory = "/Users/alice";
      services.dockhand.enable = true;
      services.dockhand.dockerHost = "nope";
    };
    error = "services.dockhand.dockerHost = \"nope\" names no enabled profile";
  };

  # ------------------------------------------------ on-demand (listen)

  darwin-listen = {
    kind = "darwin";
    host = "darwin";
    expect = "ok";
    compare = true;
    config = {
      system.primaryUser = "alice";
      virtualisation.docker-darwin = {
        enable = true;
        profiles.default.settings = {
          listen = "~/.local/state/dockhand/default/dockhand.sock";
          on_demand = true;
          idle_stop = "15m";
        };
      };
    };
    check = {
      "agents.docker-darwin.Sockets" = {
        Listeners = {
          SockPathName = "/Users/alice/.local/state/dockhand/default/dockhand.sock";
          SockPathMode = 384;
          SockType = "stream";
        };
      };
      "profiles.default.config" = {
        profiles.default = {
          listen = "~/.local/state/dockhand/default/dockhand.sock";
          on_demand = true;
          idle_stop = "15m";
        };
      };
    };
  };

  hm-linux-listen = {
    kind = "hm";
    host = "linux";
    expect = "ok";
    compare = true;
    config = {
      home.username = "alice";
      home.homeDirectory = "/home/alice";
      services.dockhand = {
        enable = true;
        dockerHost = "default";
        profiles.default.settings = {
          listen = "/home/alice/.local/state/dockhand/default/dockhand.sock";
          on_demand = true;
        };
      };
    };
    check = {
      "sockets.dockhand-default.Socket.ListenStream" = "/home/alice/.local/state/dockhand/default/dockhand.sock";
      "sockets.dockhand-default.Socket.SocketMode" = "0600";
      "sockets.dockhand-default.Install.WantedBy" = [ "sockets.target" ];
      "sessionVariables.DOCKER_HOST" = "unix:///home/alice/.local/state/dockhand/default/dockhand.sock";
    };
  };

  hm-on-demand-without-listen = {
    kind = "hm";
    host = "linux";
    expect = "fail";
    error = "services.dockhand.profiles.default.settings.on_demand needs services.dockhand.profiles.default.settings.listen";
    config = {
      home.username = "alice";
      home.homeDirectory = "/home/alice";
      services.dockhand = {
        enable = true;
        profiles.default.settings.on_demand = true;
      };
    };
  };
}
