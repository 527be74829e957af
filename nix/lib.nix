# Shared logic of dockhand's nix-darwin and home-manager modules.
#
# Everything here is pure (it needs nixpkgs' `lib` only), so both modules
# and the evaluation tests under tests/nix/ use the same code:
#
#   - `settingsType`: dockhand's profile keys as typed options, so that an
#     unknown key or a wrong type fails evaluation naming the option;
#   - `profileOptions`: `profiles.<name>` = { enable; settings; environment; };
#   - `configFor`: the attrset rendered to dockhand's TOML (nulls removed);
#   - `launchdServiceConfig` / `systemdService`: the same keys and values
#     as `dockhand service print --platform launchd|systemd`.
#
# Keep this file in step with src/config/ and src/service/ (the Rust side
# is the source of truth; tests/nix/run.sh compares the two).
{ lib }:

let
  inherit (lib)
    mkOption
    types
    literalExpression
    ;

  # ------------------------------------------------------------ durations

  # humantime's units (what dockhand's config parser accepts), in ns.
  unitNs =
    let
      ns = 1;
      us = 1000 * ns;
      ms = 1000 * us;
      s = 1000 * ms;
      m = 60 * s;
      h = 60 * m;
      d = 24 * h;
    in
    {
      nsec = ns; ns = ns; nanos = ns;
      usec = us; us = us;
      msec = ms; ms = ms; millis = ms;
      seconds = s; second = s; sec = s; secs = s; s = s;
      minutes = m; minute = m; min = m; mins = m; m = m;
      hours = h; hour = h; hr = h; hrs = h; h = h;
      days = d; day = d; d = d;
      weeks = 7 * d; week = 7 * d; w = 7 * d;
      months = 2630016 * s; month = 2630016 * s; M = 2630016 * s;
      years = 31557600 * s; year = 31557600 * s; y = 31557600 * s;
    };

  unitRe = lib.concatStringsSep "|" (
    # longest first, so that the alternation never stops at a prefix
    lib.sort (a: b: lib.stringLength a > lib.stringLength b) (lib.attrNames unitNs)
  );

  durationRe = " *([0-9]+ *(${unitRe}) *)+";

  # "1h 30m" -> 5400; whole seconds rounded up, like dockhand's ceil_secs
  # (src/service/mod.rs).
  durationToSeconds =
    str:
    let
      parts = lib.filter lib.isList (builtins.split "([0-9]+) *(${unitRe})" str);
      ns = lib.foldl' (acc: p: acc + lib.toInt (lib.elemAt p 0) * unitNs.${lib.elemAt p 1}) 0 parts;
      s = ns / 1000000000;
    in
    if s * 1000000000 < ns then s + 1 else s;

  durationType =
    let
      str = types.strMatching durationRe // {
        description = "duration such as \"30s\", \"2m\" or \"1h 30m\"";
      };
    in
    types.coercedTo types.ints.unsigned (n: "${toString n}s") str;

  # ---------------------------------------------------------------- helpers

  nullOr = types.nullOr;

  opt =
    type: description: extra:
    mkOption ({ inherit description; type = nullOr type; default = null; } // extra);

  listOpt =
    description: extra:
    mkOption ({ inherit description; type = nullOr (types.listOf types.str); default = null; } // extra);

  u32 = types.ints.u32;

  # Drop nulls (unset options) and the module system's `_module`, recursively.
  clean =
    v:
    if lib.isAttrs v && !(lib.isDerivation v) then
      lib.mapAttrs (_: clean) (lib.filterAttrs (n: x: n != "_module" && x != null) v)
    else if lib.isList v then
      map clean v
    else
      v;

  # `~`, `~/x`, `$HOME` and `${HOME}` at the start of a path, as dockhand does.
  expandHome =
    home: raw:
    let
      try =
        prefix:
        let
          rest = lib.removePrefix prefix raw;
        in
        if lib.hasPrefix prefix raw && (rest == "" || lib.hasPrefix "/" rest) then home + rest else null;
      hits = lib.filter (x: x != null) (map try [ "\${HOME}" "$HOME" "~" ]);
    in
    if hits == [ ] then raw else lib.head hits;

  # -------------------------------------------------------- settings type

  settingsModule = {
    options = {
      engine = opt (types.enum [ "colima" "dockerd" "command" "ssh" ]) ''
        The engine dockhand supervises: `colima` (a Linux VM on macOS),
        `dockerd` (Linux), `command` (any program serving the Docker API on
        `socket`, such as `podman system service`), or `ssh` (a remote
        engine's socket forwarded over one supervised ssh connection).
        Default: `colima` on macOS, `dockerd` on Linux.
      '' { example = "colima"; };

      socket = opt types.str ''
        The Docker API socket of the engine, which clients use. Default:
        colima's `<COLIMA_HOME>/<colima profile>/docker.sock`; dockerd:
        `<state_dir>/docker.sock`. Required with `engine = "command"`.
        `~` and `$HOME` expand.
      '' { example = "~/.colima/default/docker.sock"; };

      state_dir = opt types.str ''
        Directory of the profile's lock, pid and state files. Default:
        `$XDG_STATE_HOME/dockhand/<profile>` (`~/.local/state/dockhand/<profile>`).
      '' { };

      log_file = opt types.str ''
        dockhand's own log, rotated by size. Default:
        `~/Library/Logs/dockhand/<profile>.log` on macOS,
        `<state_dir>/dockhand.log` on Linux. The service manager's
        stdout/stderr go next to it (`.log` replaced by `.launchd.log`).
      '' { };

      label = opt types.str ''
        The launchd label. Default: `local.docker` for the `default` profile,
        `local.docker.<profile>` for others.
      '' { };

      probe_interval = opt durationType "How often the engine's `/_ping` is probed (default \"30s\")." {
        example = "30s";
      };
      probe_timeout = opt durationType "How long one probe may take (default \"5s\"); at most `probe_interval`." {
        example = "5s";
      };
      start_timeout = opt durationType "How long the engine may take to become ready (default \"3m\")." {
        example = "3m";
      };
      stop_timeout = opt durationType ''
        How long the engine may take to stop gracefully before it is killed
        (default "60s"). The service manager's stop timeout is this plus 15 s.
      '' { example = "60s"; };
      restart_backoff_max = opt durationType "The longest wait between restarts of a failing engine (default \"5m\")." {
        example = "5m";
      };

      listen = opt types.str ''
        The socket dockhand serves clients on (the on-demand proxy); clients
        then talk to dockhand, dockhand to the engine's `socket`. Default:
        unset, no proxy. With it, the service manager holds the socket from
        login (socket activation). `~` and `$HOME` expand.
      '' { example = "~/.local/state/dockhand/default/dockhand.sock"; };
      on_demand = opt types.bool ''
        Start with the engine stopped and start it at the first request that
        needs it (default false). Needs `listen`.
      '' { };
      idle_stop = opt durationType ''
        Stop the engine after it has been idle this long: no running
        container, no active request, polling aside (default: never). Needs
        `listen`.
      '' { example = "15m"; };
      docker_context = opt types.bool ''
        Keep the docker context `dockhand` (`dockhand-<profile>`) pointing at
        `listen` (default true when `listen` is set).
      '' { };
      passive = listOpt ''
        Requests that never start or keep the engine awake, as
        "[METHOD ]/path" with `*` as a wildcard; replaces dockhand's default
        list (see the README).
      '' { example = [ "GET /_ping" "GET /containers/json" ]; };

      dockerd = opt (types.submodule {
        options = {
          binary = opt types.str "The dockerd executable: a name looked up on PATH or a path (default `dockerd`)." { };
          data_root = opt types.str "dockerd's `--data-root` (default `<state_dir>/data`)." { };
          exec_root = opt types.str "dockerd's `--exec-root` (default `<state_dir>/exec`)." { };
          args = listOpt "Extra arguments for dockerd." { example = [ "--storage-driver=overlay2" ]; };
        };
      }) "Settings of the `dockerd` engine (only with `engine = \"dockerd\"`)." { };

      command = opt (types.submodule {
        options = {
          argv = mkOption {
            type = types.nonEmptyListOf types.str;
            description = "The program and its arguments, run without a shell.";
            example = [ "podman" "system" "service" "--time=0" "unix:///run/user/1000/podman.sock" ];
          };
        };
      }) "Settings of the `command` engine (only with `engine = \"command\"`; set `socket` too)." { };

      colima = opt (types.submodule {
        options = {
          profile = opt types.str "Colima profile (default: the dockhand profile's name)." { };
          cpu = opt u32 "Number of CPUs of the VM (`colima start --cpu`)." { example = 4; };
          memory = opt u32 "Memory of the VM in GiB (`--memory`)." { example = 8; };
          disk = opt u32 "Disk size of the VM in GiB (`--disk`)." { example = 100; };
          vm_type = opt (types.enum [ "qemu" "vz" "krunkit" ]) "Virtual machine type (`--vm-type`)." { example = "vz"; };
          arch = opt types.str "Architecture of the VM (`--arch`), e.g. `aarch64` or `x86_64`." { };
          runtime = opt (types.enum [ "docker" ]) "Container runtime; dockhand supervises `docker` only." { };
          mounts = listOpt "Directories mounted into the VM (`--mount`)." { example = [ "~/src:w" ]; };
          args = listOpt "Extra arguments for `colima start`." { };
        };
      }) "Settings of the `colima` engine (only with `engine = \"colima\"`)." { };

      ssh = opt (types.submodule {
        options = {
          host = mkOption {
            type = types.str;
            description = "The remote host: an ssh config alias or `user@host`.";
            example = "devbox";
          };
          remote_socket = opt types.str "The engine's socket on the remote host (default `/var/run/docker.sock`)." { };
          keepalive = opt types.str "ssh's `ServerAliveInterval` (default `10s`); three missed answers end the connection." { example = "10s"; };
          config_file = opt types.str "An ssh client config passed with `-F`." { };
        };
      }) "Settings of the `ssh` engine (only with `engine = \"ssh\"`; `listen` defaults to `<state_dir>/docker.sock`)." { };
    };
  };

  settingsType = types.submodule settingsModule;

  # ------------------------------------------------------ profile options

  profileOptions =
    { platformText }:
    { name, ... }:
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = true;
          description = ''
            Whether to run a dockhand supervisor for this profile at login.
            The `default` profile is defined (and enabled) as soon as the
            module is enabled.
          '';
        };

        settings = mkOption {
          type = settingsType;
          default = { };
          example = literalExpression ''
            {
              stop_timeout = "90s";
              colima = { cpu = 4; memory = 8; vm_type = "vz"; };
            }
          '';
          description = ''
            dockhand's keys of `[profiles.${"<name>"}]`, rendered to TOML and
            passed with `--config`. Unset keys take dockhand's defaults
            (see `dockhand config show --profile <name>`). ${platformText}
          '';
        };

        environment = mkOption {
          type = types.attrsOf types.str;
          default = { };
          example = {
            COLIMA_HOME = "/Users/alice/.config/colima";
          };
          description = ''
            Extra environment variables of the service, such as `COLIMA_HOME`,
            `LIMA_HOME` or `DOCKER_CONFIG` (dockhand's own installer adds
            these when they are set). `PATH` and `HOME` are set by the module.
          '';
        };
      };
    };

  # Profile names, labels and Colima profiles become file names: a safe
  # alphabet and no leading dot (as dockhand's config/resolve.rs checks).
  validName = name: builtins.match "[A-Za-z0-9_-][A-Za-z0-9._-]*" name != null;

  # --------------------------------------------------- derived properties

  # The attrset rendered to the profile's TOML file.
  configFor = name: settings: {
    profiles.${name} = clean settings;
  };

  labelFor =
    name: settings:
    if settings.label != null then
      settings.label
    else if name == "default" then
      "local.docker"
    else
      "local.docker.${name}";

  stateDirFor =
    { name, settings, home, stateHome ? "${home}/.local/state" }:
    if settings.state_dir != null then expandHome home settings.state_dir else "${stateHome}/dockhand/${name}";

  logFileFor =
    { name, settings, home, isDarwin, stateHome ? "${home}/.local/state" }:
    if settings.log_file != null then
      expandHome home settings.log_file
    else if isDarwin then
      "${home}/Library/Logs/dockhand/${name}.log"
    else
      "${stateDirFor { inherit name settings home stateHome; }}/dockhand.log";

  # Where launchd writes the job's stdout/stderr: next to dockhand's log.
  launchdLogFor =
    logFile:
    if lib.hasSuffix ".log" logFile then
      "${lib.removeSuffix ".log" logFile}.launchd.log"
    else
      "${logFile}.launchd.log";

  stopTimeoutFor =
    settings: if settings.stop_timeout != null then durationToSeconds settings.stop_timeout else 60;

  startTimeoutFor =
    settings: if settings.start_timeout != null then durationToSeconds settings.start_timeout else 180;

  defaultEngine = isDarwin: if isDarwin then "colima" else "dockerd";

  # `engine`, else the kind of the profile's one engine table, else the
  # host's default (src/config/engines/mod.rs does the same).
  engineOf =
    isDarwin: s:
    let
      tables = lib.filter (t: s.${t} != null) [ "dockerd" "command" "colima" "ssh" ];
    in
    if s.engine != null then
      s.engine
    else if lib.length tables == 1 then
      lib.head tables
    else
      defaultEngine isDarwin;

  shortColimaProfile =
    p:
    if p == "" || p == "colima" || p == "default" then "default" else lib.removePrefix "colima-" p;

  # The profile's Docker API socket (for DOCKER_HOST).
  socketFor =
    {
      name,
      settings,
      home,
      isDarwin,
      environment ? { },
      stateHome ? "${home}/.local/state",
    }:
    let
      engine = engineOf isDarwin settings;
      # Colima's default directory when ~/.colima doesn't exist yet:
      # ~/.colima on macOS, ~/.config/colima elsewhere (colima config/files.go).
      colimaHome =
        environment.COLIMA_HOME or (if isDarwin then "${home}/.colima" else "${home}/.config/colima");
      colimaProfile =
        if settings.colima != null && settings.colima.profile != null then settings.colima.profile else name;
    in
    if settings.socket != null then
      expandHome home settings.socket
    else if engine == "colima" then
      "${colimaHome}/${shortColimaProfile colimaProfile}/docker.sock"
    else if engine == "dockerd" then
      "${stateDirFor { inherit name settings home stateHome; }}/docker.sock"
    else
      throw "dockhand profile `${name}`: engine = \"command\" needs settings.socket";

  # The socket clients use: `listen` when set, else the engine's socket.
  clientSocketFor =
    args@{ settings, home, ... }:
    if settings.listen != null then expandHome home settings.listen else socketFor args;

  # Assertions that mirror dockhand's own config checks, so that
  # `darwin-rebuild`/`home-manager switch` fail instead of the service.
  profileAssertions =
    { prefix, isDarwin, profiles }:
    lib.concatLists (
      lib.mapAttrsToList (
        name: p:
        let
          s = p.settings;
          engine = engineOf isDarwin s;
          opt' = "${prefix}.profiles.${name}.settings";
        in
        [
          {
            assertion = validName name;
            message = "${prefix}.profiles.${name}: a profile name may only contain letters, digits, '-', '_' and '.', and may not start with '.'.";
          }
          {
            assertion = s.label == null || validName s.label;
            message = "${opt'}.label: a label may only contain letters, digits, '-', '_' and '.', and may not start with '.' (it names the launchd job and its plist file).";
          }
          {
            assertion = s.colima == null || s.colima.profile == null || validName s.colima.profile;
            message = "${opt'}.colima.profile: a Colima profile may only contain letters, digits, '-', '_' and '.', and may not start with '.'.";
          }
          {
            assertion = (engine == "command") -> (s.command != null && s.socket != null);
            message = "${opt'}: engine = \"command\" needs `command.argv` and `socket`.";
          }
          {
            assertion = (engine == "ssh") -> s.ssh != null;
            message = "${opt'}: engine = \"ssh\" needs `ssh.host`.";
          }
        ]
        ++ map (key: {
          # The ssh engine's listen has a default.
          assertion = (s.${key} != null && s.${key} != false) -> (s.listen != null || engine == "ssh");
          message = "${opt'}.${key} needs ${opt'}.listen: dockhand can only see requests on a socket it serves.";
        }) [ "on_demand" "idle_stop" "docker_context" "passive" ]
        ++ [
          {
            assertion = s.listen == null || s.socket == null || s.listen != s.socket;
            message = "${opt'}.listen is the engine's socket: they must differ.";
          }
        ]
        ++ map (table: {
          assertion = s.${table} != null -> engine == table;
          message = "${opt'}.${table} is set but the profile's engine is \"${engine}\": remove it or set ${opt'}.engine = \"${table}\".";
        }) [ "dockerd" "command" "colima" "ssh" ]
      ) (lib.filterAttrs (_: p: p.enable) profiles)
    );

  # ------------------------------------------------------------- launchd

  # The service's PATH after the packages' own bin dirs: the directories
  # dockhand's installer adds after the tools it finds (Inputs::path_var in
  # src/service/mod.rs), the same for launchd and systemd.
  pathTail =
    { user, home }:
    [
      "/run/current-system/sw/bin"
      "/etc/profiles/per-user/${user}/bin"
      "${home}/.nix-profile/bin"
      "/opt/homebrew/bin"
      "/usr/local/bin"
      "/usr/bin"
      "/bin"
      "/usr/sbin"
      "/sbin"
    ];

  binDirs = pkgs': map (p: "${p}/bin") (lib.filter (p: p != null) pkgs');

  pathFor =
    { packages, tail }: lib.concatStringsSep ":" (lib.unique (binDirs packages ++ tail));

  programArguments =
    { exe, name, configFile }:
    [
      exe
      "run"
      "--profile"
      name
    ]
    ++ lib.optionals (configFile != null) [
      "--config"
      (toString configFile)
    ];

  # The launchd job, keys and values as `dockhand service print --platform launchd`.
  launchdServiceConfig =
    {
      name,
      settings,
      exe,
      configFile,
      home,
      path,
      environment ? { },
    }:
    let
      launchdLog = launchdLogFor (logFileFor {
        inherit name settings home;
        isDarwin = true;
      });
    in
    {
      Label = labelFor name settings;
      ProgramArguments = programArguments { inherit exe name configFile; };
      # dockhand is the job's process and stays running: restart it when it
      # fails or crashes, never fight a clean exit.
      RunAtLoad = true;
      KeepAlive = {
        SuccessfulExit = false;
        Crashed = true;
      };
      ThrottleInterval = 30;
      # launchd never kills what is left in dockhand's process group (nothing
      # dockhand starts is there: engines run in groups of their own); dockhand
      # alone decides what to stop, and hands a healthy engine over on restart.
      AbandonProcessGroup = true;
      # Finite: 0 would mean "wait forever" and stall logout/shutdown.
      ExitTimeOut = stopTimeoutFor settings + 15;
      ProcessType = "Standard";
      EnvironmentVariables = environment // {
        PATH = path;
        HOME = home;
        # An error a retry can't fix exits 0: no respawn loop under KeepAlive.
        DOCKHAND_SUPERVISED_BY = "launchd";
      };
      StandardOutPath = launchdLog;
      StandardErrorPath = launchdLog;
    }
    // lib.optionalAttrs (settings.listen != null) {
      # Socket activation (src/service/activation.rs): launchd holds
      # `listen` from login; dockhand takes it with launch_activate_socket.
      Sockets.Listeners = {
        SockPathName = expandHome home settings.listen;
        SockPathMode = 384; # 0600
        SockType = "stream";
      };
    };

  # ------------------------------------------------------------- systemd

  # One word of a unit file setting, quoted as dockhand's `quote`
  # (src/service/systemd.rs): `%` -> `%%`, with `dollar` `$` -> `$$`; a word
  # with whitespace, control characters, quotes, `\` or `;` (or an empty
  # one) is double-quoted with C escapes.
  quoteSystemd =
    dollar: word:
    let
      w0 = lib.replaceStrings [ "%" ] [ "%%" ] word;
      w = if dollar then lib.replaceStrings [ "$" ] [ "$$" ] w0 else w0;
      plain = builtins.match "[^[:space:][:cntrl:]\"'\\;]+" w != null;
    in
    if plain then
      w
    else
      "\"" + lib.replaceStrings [ "\"" "\\" "\n" "\t" "\r" ] [ "\\\"" "\\\\" "\\n" "\\t" "\\r" ] w + "\"";

  # The user unit as home-manager's `systemd.user.services.<name>`, keys and
  # values as `dockhand service print --platform systemd`.
  systemdService =
    {
      name,
      settings,
      exe,
      configFile,
      path,
      environment ? { },
    }:
    {
      Unit.Description = "dockhand: Docker engine supervisor (profile ${name})";
      Service = {
        # dockhand sends READY=1 once the first start has an outcome (the
        # engine answers, or the start failed and dockhand retries with its
        # own backoff); STATUS= carries the phase.
        Type = "notify";
        NotifyAccess = "main";
        ExecStart = lib.concatMapStringsSep " " (quoteSystemd true) (programArguments {
          inherit exe name configFile;
        });
        Restart = "on-failure";
        RestartSec = "5s";
        # Permanent failures (bad config, already running, engine missing,
        # unsafe path) are not retried.
        RestartPreventExitStatus = "2 3 4 6";
        TimeoutStartSec = "${toString (startTimeoutFor settings + 30)}s";
        TimeoutStopSec = "${toString (stopTimeoutFor settings + 15)}s";
        # Only dockhand is signalled on stop/restart: it stops the engine
        # itself, and a restarted dockhand adopts a healthy engine.
        KillMode = "process";
        Environment = map (quoteSystemd false) (
          lib.mapAttrsToList (k: v: "${k}=${v}") (environment // { PATH = path; })
        );
      };
      Install.WantedBy = [ "default.target" ];
    };

  # The socket unit as home-manager's `systemd.user.sockets.<name>`, keys and
  # values as the socket unit `dockhand service print --platform systemd`
  # appends (src/service/activation.rs). Only for profiles with `listen`.
  systemdSocket =
    { name, settings, home }:
    {
      Unit.Description = "dockhand: Docker API socket (profile ${name})";
      Socket = {
        ListenStream = quoteSystemd false (expandHome home settings.listen);
        SocketMode = "0600";
        DirectoryMode = "0700";
        Accept = "no";
        Service = "dockhand-${name}.service";
      };
      Install.WantedBy = [ "sockets.target" ];
    };
  # `env K=V ...` for a command, nothing when there is no variable.
  envArgs =
    environment:
    lib.optionals (environment != { }) (
      [ "env" ] ++ lib.mapAttrsToList (k: v: "${k}=${toString v}") environment
    );

  # The directory of the launchd job's StandardOutPath: launchd may not
  # create it, and a job whose log can't be opened fails to spawn (exit 78)
  # every ThrottleInterval. Created (0700, as `dockhand service install`
  # does) by the activation, as the user (`prefix`).
  launchdLogDirFor =
    { name, settings, home }:
    dirOf (launchdLogFor (logFileFor {
      inherit name settings home;
      isDarwin = true;
    }));
  logDirScript =
    { dir, prefix ? "" }:
    ''
      ${prefix}mkdir -p -m 700 ${lib.escapeShellArg dir}
    '';
in
{
  inherit
    clean
    expandHome
    durationToSeconds
    durationType
    settingsModule
    settingsType
    profileOptions
    validName
    configFor
    labelFor
    stateDirFor
    logFileFor
    launchdLogFor
    stopTimeoutFor
    startTimeoutFor
    socketFor
    clientSocketFor
    profileAssertions
    pathTail
    pathFor
    programArguments
    launchdServiceConfig
    quoteSystemd
    systemdService
    systemdSocket
    envArgs
    launchdLogDirFor
    logDirScript
    ;

  # Shell lines for an activation script that is about to reload a changed
  # agent or unit (`old` the installed file, `new` the one replacing it): if
  # it changes, ask the running supervisor to hand its engine over to the
  # next one (`dockhand service prepare-restart`), so that a healthy engine
  # survives the activation. `prefix` runs it as the user (nix-darwin);
  # `environment` is the profile's, as the service has it (a profile that
  # sets XDG_STATE_HOME keeps its state there: without it no supervisor
  # would be found). `old` is left unquoted so that `~user/...` expands.
  prepareRestartScript =
    {
      exe,
      name,
      configFile,
      old,
      new,
      prefix ? "",
      environment ? { },
    }:
    ''
      if [[ -f ${old} ]] && ! cmp -s ${new} ${old}; then
        ${prefix}${
          lib.escapeShellArgs (
            envArgs environment
            ++ [
              exe
              "service"
              "prepare-restart"
              "--profile"
              name
              "--config"
              (toString configFile)
            ]
          )
        } || true
      fi
    '';

  # The file name of a profile's generated config, and the name of its
  # launchd agent / systemd unit in the modules.
  configFileName = name: "dockhand-${name}.toml";
  darwinAgentName = name: if name == "default" then "docker-darwin" else "docker-darwin-${name}";
  unitName = name: "dockhand-${name}";
}
