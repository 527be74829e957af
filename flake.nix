{
  description = "dockhand: keeps a Docker engine ready (Colima on macOS, dockerd on Linux), with nix-darwin and home-manager modules";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixpkgs-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "aarch64-darwin"
        "x86_64-darwin"
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (
        pkgs:
        let
          dockhand = pkgs.callPackage ./nix/package.nix { };
        in
        {
          inherit dockhand;
          default = dockhand;
        }
      );

      overlays.default = final: _prev: {
        dockhand = final.callPackage ./nix/package.nix { };
      };

      # Plain module files: they take dockhand from `pkgs.dockhand` (this
      # flake's overlay) and build it from ./nix/package.nix otherwise.
      darwinModules.default = ./nix/darwin-module.nix;
      homeManagerModules.default = ./nix/hm-module.nix;
    };
}
