#!/usr/bin/env bash
# A real `systemd --user` manager for dockhand's tests, on a host whose PID 1
# is not systemd (see "A real systemd user manager on this machine" in the
# platform notes). Everything lives in DIR and in a private mount namespace;
# `down` removes what `up` made, and nothing on the host's /run changes.
#
#   rig.sh up DIR USER     start journald + `systemd --user` for USER (root or
#                          a uid >= 1000 user; `dockhand-test` is created if
#                          missing: `scripts/test` removes it if it did not exist)
#   rig.sh run DIR [K=V ...] -- CMD ...
#                          run CMD as USER inside the namespace, with a clean
#                          environment (HOME, XDG_RUNTIME_DIR, PATH, K=V)
#   rig.sh root DIR -- CMD ...   run CMD as root inside the namespace
#   rig.sh down DIR        `systemctl --user exit`, kill what is left in the
#                          rig's cgroups, remove them (and the created user)
#
# Layout of DIR: manager.pid, journald.pid, cgroups (one path per line),
# user (name uid gid home), home/, logs.
set -euo pipefail

die() {
    echo "rig: $*" >&2
    exit 1
}

# The hierarchies a manager uses on this hybrid host: cgroup2 and the
# named `systemd` v1 hierarchy (pure cgroup2 hosts have only the first).
hierarchies() {
    local h
    for h in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do
        if [ -e "$h/cgroup.procs" ]; then
            echo "$h"
            [ "$h" = /sys/fs/cgroup ] && return
        fi
    done
}

user_of() {
    read -r NAME UID_ GID_ HOME_ <"$1/user"
}

in_ns() {
    # nsenter into the manager's mount namespace, then drop to the user.
    local dir=$1
    shift
    nsenter -t "$(cat "$dir/manager.pid")" -m -- "$@"
}

cmd_up() {
    local dir=$1 user=$2
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if ! id -u "$user" >/dev/null 2>&1; then
        [ "$user" = dockhand-test ] || die "no user $user"
        # Parallel rigs share the user: create it once, under a lock.
        # `scripts/test` removes it at the end if it created it.
        # (The lock is this script itself: no lock file is left behind.)
        flock "${BASH_SOURCE[0]}" sh -c 'id -u dockhand-test >/dev/null 2>&1 ||
            useradd --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin dockhand-test'
    fi
    local uid gid home
    uid=$(id -u "$user")
    gid=$(id -g "$user")
    [ "$uid" -eq 0 ] || [ "$uid" -ge 1000 ] || die "$user: uid $uid < 1000: its journal lines would not be shown"
    home=$dir/home
    mkdir -p "$home/.config/systemd/user"
    chown -R "$uid:$gid" "$home"
    echo "$user $uid $gid $home" >"$dir/user"
    # Like logind: <root>/<name>.slice/user-<uid>.slice/user@<uid>.service,
    # the last delegated to the user (owned by them).
    local slice="dockhand-rig-$$-$RANDOM.slice" h cg
    : >"$dir/cgroups"
    for h in $(hierarchies); do
        cg=$h/$slice/user-$uid.slice/user@$uid.service
        mkdir -p "$cg"
        chown "$uid:$gid" "$cg" "$cg"/cgroup.procs
        for f in cgroup.subtree_control cgroup.threads tasks; do
            [ -e "$cg/$f" ] && chown "$uid:$gid" "$cg/$f"
        done
        echo "$h/$slice" >>"$dir/cgroups"
    done
    # The manager: a private mount namespace with fresh /run/systemd,
    # /run/log, /run/user and /var/log, journald beside it, then
    # `systemd --user` as the user in the delegated cgroup.
    local procs=""
    while read -r top; do
        procs="$procs $top/user-$uid.slice/user@$uid.service/cgroup.procs"
    done <"$dir/cgroups"
    setsid unshare --mount --propagation private -- bash -c '
        set -e
        dir=$1 uid=$2 gid=$3 home=$4 procs=$5
        for m in /run/systemd /run/log /run/user /var/log; do
            mkdir -p "$m"
            mount -t tmpfs -o mode=0755 tmpfs "$m"
        done
        mkdir -p /run/systemd/system /run/user/$uid /var/log/journal
        chown "$uid:$gid" /run/user/$uid
        chmod 0700 /run/user/$uid
        /lib/systemd/systemd-journald </dev/null >>"$dir/journald.log" 2>&1 &
        echo $! >"$dir/journald.pid"
        for p in $procs; do echo $$ >"$p"; done
        echo $$ >"$dir/manager.pid"
        exec setpriv --reuid="$uid" --regid="$gid" --init-groups \
            env -i HOME="$home" USER="$(id -nu "$uid")" \
            XDG_RUNTIME_DIR=/run/user/$uid PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
            /lib/systemd/systemd --user
    ' rig "$dir" "$uid" "$gid" "$home" "$procs" \
        </dev/null >>"$dir/manager.log" 2>&1 &
    # Ready once its private socket answers.
    local i
    for i in $(seq 1 600); do # up to 30 s on a loaded machine
        if [ -s "$dir/manager.pid" ] &&
            cmd_run "$dir" -- systemctl --user is-system-running >/dev/null 2>&1; then
            cmd_root "$dir" -- journalctl --flush >/dev/null 2>&1 || true
            return 0
        fi
        if [ -s "$dir/manager.pid" ] && ! kill -0 "$(cat "$dir/manager.pid")" 2>/dev/null; then
            break
        fi
        sleep 0.05
    done
    cat "$dir/manager.log" >&2 || true
    cmd_down "$dir" || true
    die "systemd --user did not come up (log above)"
}

cmd_run() {
    local dir=$1
    shift
    local envs=()
    while [ "$#" -gt 0 ] && [ "$1" != -- ]; do
        envs+=("$1")
        shift
    done
    [ "${1:-}" = -- ] && shift
    user_of "$dir"
    in_ns "$dir" setpriv --reuid="$UID_" --regid="$GID_" --init-groups \
        env -i HOME="$HOME_" USER="$NAME" XDG_RUNTIME_DIR="/run/user/$UID_" \
        PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin "${envs[@]}" "$@"
}

cmd_root() {
    local dir=$1
    shift
    [ "${1:-}" = -- ] && shift
    in_ns "$dir" "$@"
}

# Every pid in the rig's cgroups (all hierarchies, all levels).
rig_pids() {
    local top
    while read -r top; do
        [ -d "$top" ] && find "$top" -name cgroup.procs -exec cat {} + 2>/dev/null
    done <"$1/cgroups"
}

cmd_down() {
    local dir=$1 i
    [ -f "$dir/user" ] || return 0
    if [ -s "$dir/manager.pid" ]; then
        local mpid
        mpid=$(cat "$dir/manager.pid")
        cmd_run "$dir" -- systemctl --user exit >/dev/null 2>&1 || true
        for i in $(seq 1 100); do
            kill -0 "$mpid" 2>/dev/null || break
            sleep 0.05
        done
    fi
    # What is left (only what the tests started lives there).
    for i in $(seq 1 50); do
        local pids
        pids=$(rig_pids "$dir" | sort -u)
        [ -z "$pids" ] && break
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        sleep 0.05
    done
    if [ -s "$dir/journald.pid" ]; then
        kill -KILL "$(cat "$dir/journald.pid")" 2>/dev/null || true
    fi
    local top
    while read -r top; do
        [ -d "$top" ] && find "$top" -depth -type d -exec rmdir {} + 2>/dev/null || true
        [ -d "$top" ] && echo "rig: could not remove $top" >&2
    done <"$dir/cgroups"
    rm -f "$dir/manager.pid" "$dir/journald.pid" "$dir/user"
}

verb=${1:-}
[ "$#" -ge 2 ] || die "usage: rig.sh up|run|root|down DIR ..."
shift
case "$verb" in
up) cmd_up "$@" ;;
run) cmd_run "$@" ;;
root) cmd_root "$@" ;;
down) cmd_down "$@" ;;
*) die "unknown verb $verb" ;;
esac
