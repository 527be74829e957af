"""Drive dockhand's `listen` proxy with docker-py (the `docker` package),
for tests/it/sdk.rs. Usage: docker_py.py <proxy socket> <engine socket>.

Commands come one per line on stdin; each answer is one line on stdout,
`#<n> ok <json>` or `#<n> error <message>` (n counts commands from 1).
Images are local (`bb`, imported by the Rust side); nothing is pulled.
"""

import gc
import io
import json
import sys
import tarfile
import time

import docker

PROXY, DIRECT = sys.argv[1], sys.argv[2]
HELD = []  # exec/attach sockets kept open, as docker-py callers do


def client(sock):
    return docker.DockerClient(base_url="unix://" + sock, version="auto", timeout=120)


def context(dockerfile):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def lists():
    """What SDK users ask first: answered alike, engine running or not."""
    c = client(PROXY)
    try:
        c.volumes.get("dh-missing")
        missing = "found"
    except docker.errors.NotFound:
        missing = "NotFound"
    info = c.info()
    out = {
        "containers": sorted(x.id for x in c.containers.list()),
        "images": sorted((i.id, tuple(i.tags)) for i in c.images.list()),
        "info": [info["ID"], info["Containers"], info["Images"]],
        "volume": c.volumes.get("dhvol").name,
        "missing": missing,
        "ping": c.ping(),
    }
    c.close()
    return out


def wake():
    """A passive request never asked before: no recorded answer."""
    c = client(PROXY)
    n = len(c.containers.list(filters={"label": "dh-never-recorded=1"}))
    c.close()
    return n


def lists_unrecorded():
    """The SDK's first calls on an engine dockhand has never stopped (no
    record): each starts it, or finds it started, and gets its answer."""
    c = docker.DockerClient(base_url="unix://" + PROXY, version="1.41", timeout=120)
    out = [len(c.containers.list()), len(c.images.list()), c.info()["Containers"]]
    try:
        c.volumes.get("dh-missing")
    except docker.errors.NotFound:
        out.append("NotFound")
    c.close()
    return out


def build_chunks(c, dockerfile):
    return list(c.api.build(fileobj=context(dockerfile), custom_context=True,
                            tag="dh-built", rm=True, decode=False))


def build_same():
    """A build's stream: the same chunks through dockhand as direct."""
    dockerfile = "FROM bb\nRUN /bin/busybox echo built\nLABEL dh=1\n"
    d, p = client(DIRECT), client(PROXY)
    build_chunks(d, dockerfile)  # the build cache: the same steps after
    direct = build_chunks(d, dockerfile)
    proxied = build_chunks(p, dockerfile)
    if direct != proxied:
        raise AssertionError(f"direct {direct!r}\nthrough dockhand {proxied!r}")
    return len(direct)


def running(c, cid):
    return any(x.id.startswith(cid) for x in c.containers.list())


def discard_build(sock):
    """Start a build with a quiet 60 s step, discard its stream once the
    step runs, and wait (20 s at most) for the engine to cancel it."""
    c = client(sock)
    gen = c.api.build(fileobj=context("FROM bb\nRUN /bin/busybox sleep 60\n"),
                      custom_context=True, nocache=True, rm=True, decode=True)
    cid = None
    for chunk in gen:
        s = chunk.get("stream", "")
        if "Running in" in s:
            cid = s.split("Running in")[1].strip()
            break
    d = client(DIRECT)
    deadline = time.monotonic() + 30
    while not running(d, cid):  # created first, then started
        if time.monotonic() > deadline:
            raise AssertionError(f"the build step {cid} never ran")
        time.sleep(0.05)
    gen.close()
    c.close()
    del gen, c
    gc.collect()
    deadline = time.monotonic() + 20
    while running(d, cid):
        if time.monotonic() > deadline:
            raise AssertionError(f"the build step {cid} still runs 20 s after its client went away ({sock})")
        time.sleep(0.1)
    return cid


def build_discard():
    return [discard_build(DIRECT), discard_build(PROXY)]


def read_to_eof(sock):
    out = b""
    while True:
        b = sock.read(4096)
        if not b:
            return out
        out += b


def exec_hold():
    """An exec and an attach the engine has ended, their sockets kept."""
    c = client(PROXY)
    ctr = c.containers.run("bb", ["/bin/busybox", "sh", "-c", "read x"],
                           stdin_open=True, detach=True)
    att = c.api.attach_socket(ctr.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
    e = c.api.exec_create(ctr.id, ["/bin/busybox", "echo", "hi"])
    es = c.api.exec_start(e["Id"], socket=True)
    if b"hi" not in read_to_eof(es):
        raise AssertionError("exec output lost")
    att._sock.sendall(b"x\n")
    read_to_eof(att)
    ctr.wait(timeout=60)
    HELD.extend([att, es, c])
    return ctr.id


def release():
    for s in HELD:
        s.close()
    HELD.clear()
    return True


COMMANDS = {f.__name__: f for f in [lists, wake, lists_unrecorded, build_same, build_discard, exec_hold, release]}

for n, line in enumerate(sys.stdin, 1):
    cmd = line.strip()
    try:
        res = COMMANDS[cmd]()
        print(f"#{n} ok {json.dumps(res)}", flush=True)
    except Exception as e:  # reported to the Rust side, which fails the test
        msg = f"{type(e).__name__}: {e}".replace("\n", " | ")
        print(f"#{n} error {msg}", flush=True)
