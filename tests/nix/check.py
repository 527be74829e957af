#!/usr/bin/env python3
"""Module evaluation tests of dockhand's nix-darwin and home-manager modules.

Called by tests/nix/run.sh with NIXPKGS_LIB, NIX_DARWIN and HOME_MANAGER set.
For every case of tests/nix/cases.nix it evaluates tests/nix/eval.nix and
checks the result:

  - "fail" cases: evaluation fails and the error contains the case's text
    (an assertion's message, or the option's name for bad settings);
  - "ok" cases: the listed leaf values; with `compare`, every generated
    launchd agent / systemd unit is compared with what
    `dockhand service print --platform launchd|systemd` renders for the same
    settings (the TOML file the module would pass with --config is written
    from the attrset fed to pkgs.formats.toml, at the same path).

By design two things differ between the module and `dockhand service print`:
the dockhand executable (a /nix/store path vs. the binary under test) and
PATH (the module puts the nix packages' bin dirs first; dockhand puts the
directories where it finds colima/limactl/docker/qemu on the machine that
renders). Those are compared structurally, everything else exactly.

Prints one PASS/FAIL/SKIP line per check and, last, "COUNTS <passed> <failed>".
"""

import json
import os
import plistlib
import shlex
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.join(REPO, "tests", "nix")
CI = os.environ.get("CI") == "true"

passed = 0
failed = 0


def ok(msg):
    global passed
    passed += 1
    print(f"PASS: {msg}", flush=True)


def bad(msg, detail=None):
    global failed
    failed += 1
    print(f"FAIL: {msg}", flush=True)
    if detail:
        for line in str(detail).rstrip().splitlines():
            print(f"      {line}")


def skip(msg):
    print(f"SKIP: {msg}", flush=True)


# ---------------------------------------------------------------- nix


def nix_eval(expr_args):
    return subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json"] + expr_args,
        capture_output=True,
        text=True,
        cwd=REPO,
    )


def load_cases():
    r = nix_eval(
        [
            "-E",
            "builtins.mapAttrs (_: c: removeAttrs c [ \"config\" ]) (import ./tests/nix/cases.nix)",
        ]
    )
    if r.returncode != 0:
        raise SystemExit(f"cannot read tests/nix/cases.nix:\n{r.stderr}")
    return json.loads(r.stdout)


def eval_case(name, config_dir):
    return nix_eval(
        [
            "tests/nix/eval.nix",
            "--argstr", "nixpkgsLib", os.environ["NIXPKGS_LIB"],
            "--argstr", "nixDarwin", os.environ["NIX_DARWIN"],
            "--argstr", "homeManager", os.environ["HOME_MANAGER"],
            "--argstr", "configDir", config_dir,
            "--argstr", "case", name,
        ]
    )


def lookup(data, dotted):
    """Follows "a.b.c" (keys may contain '-'); returns (found, value)."""
    cur = data
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


def subst(v, config_dir):
    if isinstance(v, str):
        return v.replace("/tmp/dockhand-nix-test", config_dir)
    if isinstance(v, list):
        return [subst(x, config_dir) for x in v]
    if isinstance(v, dict):
        return {k: subst(x, config_dir) for k, x in v.items()}
    return v


# --------------------------------------------------------------- TOML


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot render {v!r} as TOML")


def to_toml(data, prefix=()):
    out = []
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    if prefix and (scalars or not tables):
        out.append("[" + ".".join(json.dumps(p) if not p.replace("_", "").replace("-", "").isalnum() else p for p in prefix) + "]")
    for k, v in scalars.items():
        out.append(f"{k} = {toml_value(v)}")
    for k, v in tables.items():
        out.extend(to_toml(v, prefix + (k,)))
    return out


# ---------------------------------------------------- dockhand itself


class Dockhand:
    def __init__(self):
        self.exe = None
        self.why = None
        self.tool_dir = None

    def find(self):
        exe = os.environ.get("DOCKHAND_BIN")
        if not exe:
            r = subprocess.run(
                ["cargo", "build", "--quiet", "--bin", "dockhand"],
                cwd=REPO,
                capture_output=True,
                text=True,
            )
            if r.returncode != 0:
                self.why = "cargo build failed:\n" + r.stderr[-3000:]
                return
            exe = os.path.join(
                os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")), "debug", "dockhand"
            )
        if not os.access(exe, os.X_OK):
            self.why = f"{exe} is not an executable"
            return
        self.exe = exe

    def make_tool_dir(self, base):
        """Stand-ins for colima, limactl and docker: dockhand puts the
        directory where it finds them first on the service's PATH."""
        self.tool_dir = os.path.join(base, "tools", "bin")
        os.makedirs(self.tool_dir)
        for t in ("colima", "limactl", "docker"):
            path = os.path.join(self.tool_dir, t)
            with open(path, "w") as f:
                f.write("#!/bin/sh\nexit 0\n")
            os.chmod(path, 0o755)

    def print_service(self, platform, profile, config, home, user, extra_env):
        env = {
            "HOME": home,
            "USER": user,
            "LOGNAME": user,
            "PATH": self.tool_dir,
            "LANG": "C.UTF-8",
        }
        env.update(extra_env)
        return subprocess.run(
            [self.exe, "--config", config, "service", "print", "--platform", platform, "--profile", profile],
            capture_output=True,
            env=env,
        )


def compare_path(label, nix_path, dh_path, tool_dir, problems):
    """The module's PATH is its packages' bin dirs, then fixed directories;
    dockhand's is the directories where it found the tools (here: only
    tool_dir, the PATH it ran with), then the same fixed directories."""
    nix = nix_path.split(":")
    dh = dh_path.split(":")
    nix_tools = [d for d in nix if d.startswith("/nix/store/")]
    nix_fixed = [d for d in nix if not d.startswith("/nix/store/")]
    if not nix_tools or nix[: len(nix_tools)] != nix_tools:
        problems.append(f"{label}: the module's PATH does not start with its packages' bin dirs: {nix}")
    if not dh or dh[0] != tool_dir:
        problems.append(f"{label}: dockhand's PATH does not start with the tools' directory {tool_dir}: {dh}")
    if nix_fixed != dh[1:]:
        problems.append(f"{label}: the fixed directories differ:\n  module:   {nix_fixed}\n  dockhand: {dh[1:]}")


def compare_exe(label, nix_exe, dh_exe, problems):
    if not (nix_exe.startswith("/") and dh_exe.startswith("/")):
        problems.append(f"{label}: executable not absolute: {nix_exe!r} / {dh_exe!r}")
    elif os.path.basename(nix_exe) != "dockhand" or os.path.basename(dh_exe) != os.path.basename(nix_exe):
        problems.append(f"{label}: executables differ in name: {nix_exe!r} / {dh_exe!r}")


def compare_env(label, a, b, tool_dir, problems):
    """Environment variables: the same names and values; PATH structurally."""
    if set(a) != set(b):
        problems.append(f"{label} names: module {sorted(a)} != dockhand {sorted(b)}")
    for n in sorted(set(a) & set(b)):
        if n == "PATH":
            compare_path(f"{label} PATH", a[n], b[n], tool_dir, problems)
        elif a[n] != b[n]:
            problems.append(f"{label} {n}: module {a[n]!r} != dockhand {b[n]!r}")


def compare_launchd(nix, dh, tool_dir):
    problems = []
    if set(nix) != set(dh):
        problems.append(
            f"keys differ: only in the module {sorted(set(nix) - set(dh))}, only in dockhand's plist {sorted(set(dh) - set(nix))}"
        )
    for k in sorted(set(nix) & set(dh)):
        a, b = nix[k], dh[k]
        if k == "ProgramArguments":
            compare_exe("ProgramArguments[0]", a[0], b[0], problems)
            if a[1:] != b[1:]:
                problems.append(f"ProgramArguments[1:]: module {a[1:]} != dockhand {b[1:]}")
        elif k == "EnvironmentVariables":
            compare_env("EnvironmentVariables", a, b, tool_dir, problems)
        elif a != b:
            problems.append(f"{k}: module {a!r} != dockhand {b!r}")
    return problems


def parse_unit(text):
    """systemd unit -> {section: {key: [values]}} (repeated keys accumulate)."""
    sections = {}
    cur = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            cur = sections.setdefault(line[1:-1], {})
            continue
        k, _, v = line.partition("=")
        cur.setdefault(k.strip(), []).append(v.strip())
    return sections


def unit_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def env_assignments(values):
    out = {}
    for v in values:
        for word in shlex.split(v):
            k, _, val = word.partition("=")
            out[k] = val
    return out


def compare_systemd(nix, dh, tool_dir):
    problems = []
    nix = {s: {k: [unit_value(x) for x in (v if isinstance(v, list) else [v])] for k, v in kv.items()} for s, kv in nix.items()}
    if set(nix) != set(dh):
        problems.append(f"sections differ: module {sorted(nix)} != dockhand {sorted(dh)}")
    for s in sorted(set(nix) & set(dh)):
        a, b = nix[s], dh[s]
        if set(a) != set(b):
            problems.append(
                f"[{s}] keys differ: only in the module {sorted(set(a) - set(b))}, only in dockhand's unit {sorted(set(b) - set(a))}"
            )
        for k in sorted(set(a) & set(b)):
            if k == "ExecStart":
                x, y = shlex.split(a[k][0]), shlex.split(b[k][0])
                compare_exe("ExecStart", x[0], y[0], problems)
                if x[1:] != y[1:]:
                    problems.append(f"ExecStart arguments: module {x[1:]} != dockhand {y[1:]}")
            elif k == "Environment":
                compare_env("Environment", env_assignments(a[k]), env_assignments(b[k]), tool_dir, problems)
            elif a[k] != b[k]:
                problems.append(f"[{s}] {k}: module {a[k]} != dockhand {b[k]}")
    return problems


# -------------------------------------------------------------- main


def main():
    cases = load_cases()
    dockhand = Dockhand()
    need_dockhand = any(c.get("compare") for c in cases.values())
    if need_dockhand:
        dockhand.find()
        if dockhand.exe is None:
            print(f"# no dockhand binary to compare with: {dockhand.why}")
        else:
            print(f"# comparing with {dockhand.exe}")

    with tempfile.TemporaryDirectory(prefix="dockhand-nix-") as config_dir:
        dockhand.make_tool_dir(config_dir)
        for name in sorted(cases):
            c = cases[name]
            r = eval_case(name, config_dir)
            what = f"{name} ({c['kind']} module, {c['host']} host)"
            if c["expect"] == "fail":
                if r.returncode == 0:
                    bad(f"{what}: evaluation succeeded, expected an error containing {c['error']!r}")
                elif c["error"] not in r.stderr:
                    bad(f"{what}: error lacks {c['error']!r}", r.stderr[-2000:])
                else:
                    ok(f"{what}: fails with {c['error']!r}")
                continue

            if r.returncode != 0:
                bad(f"{what}: evaluation failed", r.stderr[-3000:])
                continue
            out = json.loads(r.stdout)

            problems = []
            for path, want in sorted(c.get("check", {}).items()):
                want = subst(want, config_dir)
                found, got = lookup(out, path)
                if want is None:
                    if found:
                        problems.append(f"{path}: expected absent, got {got!r}")
                elif not found:
                    problems.append(f"{path}: missing (expected {want!r})")
                elif got != want:
                    problems.append(f"{path}: expected {want!r}, got {got!r}")
            for path, wants in sorted(c.get("contains", {}).items()):
                found, got = lookup(out, path)
                for want in wants:
                    want = subst(want, config_dir)
                    if not found or want not in got:
                        problems.append(f"{path}: lacks {want!r} in {got!r}")
            if problems:
                bad(f"{what}: {len(problems)} expected value(s) differ", "\n".join(problems))
            else:
                n = len(c.get("check", {})) + sum(len(v) for v in c.get("contains", {}).values())
                ok(f"{what}: {n} expected values")

            if not c.get("compare"):
                continue
            launchd = c["host"] == "darwin"
            platform = "launchd" if launchd else "systemd"
            if dockhand.exe is None:
                msg = f"{what}: comparison with `dockhand service print --platform {platform}`: no dockhand binary (see above)"
                bad(msg) if CI else skip(msg)
                continue
            for prof, p in sorted(out["profiles"].items()):
                cfg_file = p["configFile"]
                toml_data = json.loads(json.dumps(p["config"]))
                # `service print --platform launchd` resolves macOS's
                # defaults (engine colima, ~/Library/Logs) on any host, so
                # the module's TOML is given to dockhand unchanged.
                with open(cfg_file, "w") as f:
                    f.write("\n".join(to_toml(toml_data)) + "\n")
                if launchd:
                    unit = ("docker-darwin" if prof == "default" else f"docker-darwin-{prof}") if c["kind"] == "darwin" else f"dockhand-{prof}"
                    generated = out["agents"].get(unit)
                else:
                    unit = f"dockhand-{prof}"
                    generated = out["units"].get(unit)
                label = f"{what}: {unit} == `dockhand service print --platform {platform} --profile {prof}`"
                if generated is None:
                    bad(f"{label}: the module generated no {unit}")
                    continue
                pr = dockhand.print_service(platform, prof, cfg_file, out["home"], out["user"], p["environment"])
                text = pr.stdout.decode(errors="replace")
                if pr.returncode != 0 or not text.strip():
                    msg = f"{label}: dockhand printed nothing usable (exit {pr.returncode})"
                    detail = pr.stderr.decode(errors="replace")
                    bad(msg, detail)
                    continue
                # `service print --platform systemd` appends the socket unit
                # of a profile with `listen` after a "# ---- <name>.socket" line.
                text, _, socket_text = text.partition("\n# ---- ")
                if not launchd and (socket_text or unit in out.get("sockets", {})):
                    mine = out.get("sockets", {}).get(unit)
                    sock_label = f"{what}: {unit}.socket == the socket unit `dockhand service print` appends"
                    if mine is None or not socket_text:
                        bad(f"{sock_label}: only one side has it", socket_text)
                    else:
                        sp = compare_systemd(mine, parse_unit(socket_text.split("\n", 1)[1]), dockhand.tool_dir)
                        bad(sock_label, "\n".join(sp)) if sp else ok(sock_label)
                try:
                    theirs = plistlib.loads(pr.stdout) if launchd else parse_unit(text)
                except Exception as e:  # noqa: BLE001
                    bad(f"{label}: cannot parse dockhand's output: {e}", text)
                    continue
                problems = (compare_launchd if launchd else compare_systemd)(generated, theirs, dockhand.tool_dir)
                if problems:
                    bad(label, "\n".join(problems) + "\n--- dockhand printed:\n" + text)
                else:
                    ok(label + " (executable and PATH compared structurally)")

    print(f"COUNTS {passed} {failed}")


if __name__ == "__main__":
    main()
