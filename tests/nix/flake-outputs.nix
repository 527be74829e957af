# flake.nix's outputs, evaluated with nixpkgs' lib and a stub nixpkgs whose
# `rustPlatform.buildRustPackage` returns its arguments. nixpkgs itself is in
# no package registry (and too large to fetch here), so the package is not
# built; this checks what can be checked without it: every system, the
# overlay, the modules, and the package's arguments (version, Cargo.lock,
# source filter, the sandbox switch for the engine tests).
#
# nix-instantiate --eval --strict --json tests/nix/flake-outputs.nix \
#   --argstr nixpkgsLib "$NIXPKGS_LIB"      → { "<check>": true|false, ... }
{ nixpkgsLib }:
let
  repo = ../..;
  lib = import (nixpkgsLib + "/lib");
  flake = import (repo + "/flake.nix");
  systems = [ "aarch64-darwin" "x86_64-darwin" "x86_64-linux" "aarch64-linux" ];
  rustPlatform.buildRustPackage = args: args // { isStub = true; };
  installShellFiles = "installShellFiles";
  stdenv = {
    buildPlatform.canExecute = _: true;
    hostPlatform = { };
  };
  callPackage =
    f: extra: import f ({ inherit lib rustPlatform installShellFiles stdenv; } // extra);
  nixpkgs = {
    inherit lib;
    legacyPackages = lib.genAttrs systems (_: { inherit lib callPackage; });
  };
  out = flake.outputs {
    self = out;
    inherit nixpkgs;
  };
  pkg = out.packages.x86_64-linux.default;
  cargo = lib.importTOML (repo + "/Cargo.toml");
  kept = rel: pkg.src.filter (toString repo + "/" + rel) "regular";
  overlaid = out.overlays.default { inherit callPackage; } { };
in
{
  "packages for the four systems" = lib.attrNames out.packages == lib.sort lib.lessThan systems;
  "default is dockhand on every system" = lib.all (
    s: out.packages.${s}.default.pname == "dockhand" && out.packages.${s}.dockhand.pname == "dockhand"
  ) systems;
  "version from Cargo.toml" = pkg.version == cargo.package.version;
  "committed Cargo.lock" = builtins.pathExists pkg.cargoLock.lockFile;
  "engine tests skip in the sandbox" = pkg.env.DOCKHAND_SKIP_ENGINE_TESTS == "1";
  "source keeps src, tests and Cargo files" = lib.all kept [
    "Cargo.toml"
    "Cargo.lock"
    "src/main.rs"
    "tests/it/main.rs"
    "tests/fixtures/engine/ping-server"
  ];
  "source leaves out nix, docs and tests/nix" = !lib.any kept [
    "flake.nix"
    "nix/lib.nix"
    "README.md"
    "tests/nix/run.sh"
  ];
  "completions and man pages installed" =
    pkg.nativeBuildInputs == [ installShellFiles ]
    && lib.all (s: lib.hasInfix s pkg.postInstall) [
      "--bash <($out/bin/dockhand completions bash)"
      "--zsh <($out/bin/dockhand completions zsh)"
      "--fish <($out/bin/dockhand completions fish)"
      "installManPage man1/*.1"
    ];
  "overlay adds dockhand" = overlaid.dockhand.pname == "dockhand";
  "darwinModules.default" = out.darwinModules.default == repo + "/nix/darwin-module.nix";
  "homeManagerModules.default" = out.homeManagerModules.default == repo + "/nix/hm-module.nix";
}
