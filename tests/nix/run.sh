#!/usr/bin/env bash
# Tests of dockhand's nix files (flake.nix, nix/, tests/nix/).
#
# 1. Always: `nix-instantiate --parse` on every .nix file of the repository
#    (Debian: apt-get install nix-bin).
# 2. When NIXPKGS_LIB, NIX_DARWIN and HOME_MANAGER point at checkouts of
#    nix-community/nixpkgs.lib (or nixpkgs), LnL7/nix-darwin and
#    nix-community/home-manager: module evaluation tests
#    (tests/nix/check.py, cases in tests/nix/cases.nix). Those projects are
#    in no package registry, so without the variables this part is skipped,
#    also with CI=true.
#    The comparison with `dockhand service print` builds dockhand with cargo
#    (or uses $DOCKHAND_BIN).
#
# Usage: tests/nix/run.sh   (from anywhere; exits 0 when nothing failed)
set -u

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo" || exit 2

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS: $*"; }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

if ! command -v nix-instantiate >/dev/null 2>&1; then
    if [ "${CI:-}" = true ]; then
        fail "nix-instantiate not found: install Debian's nix-bin (apt-get install nix-bin)"
    else
        echo "SKIP: nix-instantiate not found: install Debian's nix-bin (apt-get install nix-bin)"
    fi
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
    exit
fi
echo "# $(nix-instantiate --version)"

# ------------------------------------------------------------- parse
mapfile -t files < <(find . \( -path ./target -o -path ./.git \) -prune -o -name '*.nix' -type f -print | sort)
for f in "${files[@]}"; do
    if err=$(nix-instantiate --parse "$f" 2>&1 >/dev/null); then
        pass "parse ${f#./}"
    else
        fail "parse ${f#./}"
        printf '      %s\n' "$err"
    fi
done

# --------------------------------------------------- module evaluation
missing=()
for v in NIXPKGS_LIB NIX_DARWIN HOME_MANAGER; do
    [ -n "${!v:-}" ] || missing+=("$v")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "SKIP: module evaluation (set NIXPKGS_LIB, NIX_DARWIN, HOME_MANAGER to checkouts of" \
        "nix-community/nixpkgs.lib, LnL7/nix-darwin, nix-community/home-manager; unset: ${missing[*]})"
else
    bad=0
    [ -f "$NIXPKGS_LIB/lib/default.nix" ] || { fail "NIXPKGS_LIB=$NIXPKGS_LIB has no lib/default.nix"; bad=1; }
    [ -d "$NIX_DARWIN/modules/launchd" ] || { fail "NIX_DARWIN=$NIX_DARWIN has no modules/launchd"; bad=1; }
    [ -f "$HOME_MANAGER/modules/systemd.nix" ] || { fail "HOME_MANAGER=$HOME_MANAGER has no modules/systemd.nix"; bad=1; }
    if [ "$bad" -eq 0 ]; then
        echo "# nixpkgs lib: $NIXPKGS_LIB"
        echo "# nix-darwin: $NIX_DARWIN"
        echo "# home-manager: $HOME_MANAGER"
        # flake.nix's outputs against a stub nixpkgs (see the file).
        # stderr apart: nix's warnings (e.g. no `nixbld` group) are not JSON.
        errf=$(mktemp)
        if json=$(nix-instantiate --eval --strict --json tests/nix/flake-outputs.nix \
            --argstr nixpkgsLib "$NIXPKGS_LIB" 2>"$errf") || { json="$(cat "$errf")"; false; }; then
            while IFS=$'\t' read -r ok name; do
                if [ "$ok" = true ]; then pass "flake: $name"; else fail "flake: $name"; fi
            done < <(python3 -c 'import json,sys; [print(f"{str(v).lower()}\t{k}") for k,v in json.load(sys.stdin).items()]' <<<"$json")
        else
            fail "flake: evaluating flake.nix's outputs"
            printf '      %s\n' "$json"
        fi
        rm -f "$errf"
        out=$(mktemp)
        python3 tests/nix/check.py | tee "$out" | grep -v "^COUNTS "
        if counts=$(grep '^COUNTS ' "$out"); then
            read -r _ p f <<<"$counts"
            passed=$((passed + p))
            failed=$((failed + f))
        else
            fail "tests/nix/check.py did not finish"
        fi
        rm -f "$out"
    fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
