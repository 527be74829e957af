# dockhand built from this repository with the committed Cargo.lock.
{
  lib,
  rustPlatform,
}:

let
  cargoToml = lib.importTOML ../Cargo.toml;
  root = ../.;
  # Only what the build and the tests read: a change to flake.nix, nix/ or
  # the docs does not rebuild the package.
  keep = [
    "Cargo.toml"
    "Cargo.lock"
    "build.rs"
    "src"
    "tests"
    "benches"
    "examples"
  ];
in
rustPlatform.buildRustPackage {
  pname = "dockhand";
  inherit (cargoToml.package) version;

  src = lib.cleanSourceWith {
    src = root;
    name = "dockhand-source";
    filter =
      path: _type:
      let
        rel = lib.removePrefix (toString root + "/") (toString path);
        top = lib.head (lib.splitString "/" rel);
      in
      lib.elem top keep && !(lib.hasPrefix "tests/nix" rel);
  };

  cargoLock.lockFile = ../Cargo.lock;

  # The integration tests run a real dockerd, which the build sandbox has
  # neither the binary nor the privileges for: they skip themselves when
  # this is set. Unit tests still run.
  env.DOCKHAND_SKIP_ENGINE_TESTS = "1";

  meta = {
    description = cargoToml.package.description;
    license = with lib.licenses; [
      mit
      asl20
    ];
    mainProgram = "dockhand";
    platforms = lib.platforms.darwin ++ lib.platforms.linux;
  };
}
