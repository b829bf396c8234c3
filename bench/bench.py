#!/usr/bin/env python3
"""Side-by-side benchmark, both protocol eras, and scale curves, all on 127.0.0.1 only:

* peers: the stdio floor, coda-mcp-gateway (legacy sessions in session and shared child scope,
  2026-07-28 sessionless calls through the per-identity pool), supergateway (stateful) and PyPI
  mcp-proxy (stateful Streamable HTTP), all in front of the same fake-mcp-server;
* scale: 1/100/1000 open legacy sessions (session scope: one child each) and 1/10/100 identities
  in the modern pool (AUTH_MODE=coda against mock-coda with a tokens file): calls/s, p99, memory
  per session and per identity;
* plots: SVG files written with the standard library into the output directory.

Run through `bash bench/run.sh` (`just bench`), which builds the binaries and installs the pinned
peers first. Standard library only. Environment knobs:

  BENCH_REQUESTS  calls per concurrency level (default 5000)
  BENCH_REPS      repetitions, peer order rotated each rep; medians are reported (default 3)
  BENCH_LEVELS    concurrency levels (default "1,8,64")
  BENCH_PARTS     "peers,scale" (default both)
  BENCH_SCALE_REQUESTS  calls per scale point (default 5000), at concurrency BENCH_SCALE_C (64)
  BENCH_OUT       output directory (default bench/results)
  BENCH_GATEWAY_ENV  extra VAR=VALUE pairs for our gateway, space-separated
                     (e.g. "TOKIO_WORKER_THREADS=1")

Every figure comes from /proc, the gateway's /metrics and `mcp-harness load --json` /
`stdio-floor --json`:
  * requests/s, p50, p99: the load generator's report (every reply's id and echoed text checked,
    and in the modern era `resultType: complete`);
  * gateway CPU us per call: utime+stime of the gateway process alone over one load level,
    divided by the calls; the children's CPU is reported apart;
  * children spawned: `mcp_gateway_children_spawned_total` before and after each load level;
  * RSS: VmRSS of the gateway process alone, children summed apart;
  * cold start: process start (before fork) to the first successful initialize, polled every 2 ms;
  * listen: process start to the gateway's "listening" line (our gateway only).
Every process is started in its own process group and killed (group) at the end.
"""

import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RELEASE = os.path.join(ROOT, "target", "release")
HARNESS = os.path.join(RELEASE, "mcp-harness")
GATEWAY = os.path.join(RELEASE, "coda-mcp-gateway")
FAKE = os.path.join(RELEASE, "fake-mcp-server")
FLOOR = os.path.join(RELEASE, "stdio-floor")
HTTP_FLOOR = os.path.join(RELEASE, "http-floor")
SUPERGATEWAY = os.path.join(HERE, "node_modules", ".bin", "supergateway")
LOOPBACK = os.path.join(HERE, "loopback.cjs")
MCP_PROXY = os.path.join(HERE, ".venv", "bin", "mcp-proxy")
MOCK_CODA = os.path.join(RELEASE, "mock-coda")

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "5000"))
REPS = int(os.environ.get("BENCH_REPS", "3"))
LEVELS = [int(x) for x in os.environ.get("BENCH_LEVELS", "1,8,64").split(",")]
OUT = os.environ.get("BENCH_OUT", os.path.join(HERE, "results"))
PARTS = os.environ.get("BENCH_PARTS", "peers,era,scale").split(",")
ERA_REPS = int(os.environ.get("BENCH_ERA_REPS", "5"))
SCALE_REQUESTS = int(os.environ.get("BENCH_SCALE_REQUESTS", "5000"))
SCALE_C = int(os.environ.get("BENCH_SCALE_C", "64"))
SCALE_SESSIONS = [1, 100, 1000]
SCALE_IDENTITIES = [1, 10, 100]
WARMUP = 200
TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

STARTED = []  # every Popen we made, killed at exit


def log(text):
    print(text, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# /proc
# ----------------------------------------------------------------------------------------------


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]) + int(rest[12])  # utime, stime (fields 14, 15)
    except (OSError, IndexError, ValueError):
        return 0


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children_of(pid):
    # A child belongs to the thread that forked it: read every thread's list.
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        for child in children_of(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def fake_children(pid):
    """The fake-mcp-server processes under pid (supergateway wraps them in `sh -c`)."""
    return [d for d in descendants(pid) if comm(d).startswith("fake-mcp-serv")]


def reaped_cpu_ticks(pid):
    """cutime + cstime: CPU of the children pid has waited for (and, through them, theirs)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[13]) + int(rest[14])  # fields 16, 17
    except (OSError, IndexError, ValueError):
        return 0


def tree_cpu_ticks(pid):
    """CPU of every descendant, live or reaped, of pid (not pid itself)."""
    return sum(cpu_ticks(d) for d in descendants(pid)) + reaped_cpu_ticks(pid)


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = f.readline().split()[1]
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "mem_total_kib": int(mem),
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
    }


# ----------------------------------------------------------------------------------------------
# HTTP helpers (setup only; the load itself is mcp-harness)
# ----------------------------------------------------------------------------------------------

INIT = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "0"},
        },
    }
)
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def try_initialize(port):
    """One initialize; returns the session id ('' when none) or None on failure."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", "/mcp", INIT, HEADERS)
        response = conn.getresponse()
        body = response.read()
        session = response.getheader("mcp-session-id") or ""
        conn.close()
        if response.status == 200 and b'"result"' in body:
            return session
    except OSError:
        pass
    return None


def delete_session(port, session):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request(
            "DELETE",
            "/mcp",
            headers={"mcp-session-id": session, "mcp-protocol-version": "2025-11-25"},
        )
        conn.getresponse().read()
        conn.close()
    except OSError:
        pass


def children_spawned(port):
    """`mcp_gateway_children_spawned_total` from /metrics (None when unreadable)."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode(errors="replace")
        conn.close()
    except OSError:
        return None
    for line in body.splitlines():
        if line.startswith("mcp_gateway_children_spawned_total"):
            return int(float(line.split()[-1]))
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------------------------
# Peers
# ----------------------------------------------------------------------------------------------


def gateway_env(scope, port, coda=None):
    """Our gateway's environment; with `coda` (mock-coda's base URL and the operator token),
    AUTH_MODE=coda against it, else AUTH_MODE=none."""
    env = dict(os.environ)
    env.update(
        {
            "AUTH_MODE": "none",
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "MCP_COMMAND": FAKE,
            "CHILD_SCOPE": scope,
            "AUDIT_LOG": "off",
            "RUST_LOG": "warn",
            "IDENTITY_RATE_LIMIT_PER_MIN": "100000000",
            "MAX_SESSIONS": "5000",
            "MAX_CHILDREN": "5000",
            "MAX_SESSIONS_PER_IDENTITY": "5000",
            "MAX_INFLIGHT_PER_SESSION": "1000",
        }
    )
    if coda:
        env.update(
            {
                "AUTH_MODE": "coda",
                "OAUTH": "off",
                "CODA_API_BASE_URL": coda[0],
                "CODA_API_TOKEN": coda[1],
            }
        )
    for pair in os.environ.get("BENCH_GATEWAY_ENV", "").split():
        key, _, value = pair.partition("=")
        env[key] = value
    return env


class Peer:
    def __init__(self, name, argv, env, listen_line=None, big_sessions=False, era="legacy",
                 listen_only=False, levels_only=False, ours=None):
        self.name, self.argv, self.env = name, argv, env
        self.listen_line = listen_line
        # The load levels only (no cold start, no open-session memory): http-floor.
        self.levels_only = levels_only
        self.big_sessions = big_sessions
        self.era = era
        self.ours = listen_line is not None if ours is None else ours
        # Ready at the listening line (AUTH_MODE=coda: an anonymous initialize is refused).
        self.listen_only = listen_only
        self.proc = None

    def start(self, port):
        self.port = port
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=subprocess.PIPE if self.listen_line else subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        STARTED.append(self.proc)
        listen_ms = None
        if self.listen_line:
            line = self.proc.stdout.readline().decode(errors="replace")
            listen_ms = (time.perf_counter() - t0) * 1e3
            if self.listen_line not in line:
                raise RuntimeError(f"{self.name}: unexpected first line {line!r}")
        if self.listen_only:
            return None, listen_ms, None
        deadline = t0 + 30
        while True:
            session = try_initialize(port)
            if session is not None:
                cold_ms = (time.perf_counter() - t0) * 1e3
                break
            if time.perf_counter() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: no successful initialize within 30 s")
            time.sleep(0.002)
        return cold_ms, listen_ms, session

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        # Children in other groups (none expected): the gateway kills its own.


def make_peers(port_for):
    gw = lambda scope, era="legacy": Peer(  # noqa: E731
        "gateway-modern" if era == "modern" else f"gateway-{scope}",
        [GATEWAY],
        gateway_env(scope, port_for()),
        listen_line="listening on",
        big_sessions=(scope == "shared"),
        era=era,
    )
    sg_env = dict(os.environ)
    sg_env["NODE_OPTIONS"] = f"--require {LOOPBACK}"
    sg_port = port_for()
    sg = Peer(
        "supergateway",
        [
            SUPERGATEWAY,
            "--stdio",
            FAKE,
            "--outputTransport",
            "streamableHttp",
            "--stateful",
            "--port",
            str(sg_port),
            "--logLevel",
            "none",
        ],
        sg_env,
    )
    sg.fixed_port = sg_port
    mp_port = port_for()
    mp = Peer(
        "mcp-proxy",
        [MCP_PROXY, "--host", "127.0.0.1", "--port", str(mp_port), "--log-level", "WARNING", FAKE],
        dict(os.environ),
    )
    mp.fixed_port = mp_port
    # The least any HTTP-to-stdio bridge does per call (fixtures/src/bin/http-floor.rs): the
    # yardstick for the gateway's own CPU per call (gateway minus http-floor).
    hf_port = port_for()
    hf = Peer(
        "http-floor",
        [HTTP_FLOOR, "--server", FAKE, "--port", str(hf_port)],
        dict(os.environ),
        listen_line="http-floor listening on",
        levels_only=True,
        ours=False,
    )
    hf.fixed_port = hf_port
    return [gw("session"), gw("shared"), gw("session", "modern"), hf, sg, mp]


PEERS = ["gateway-session", "gateway-shared", "gateway-modern", "http-floor", "supergateway",
         "mcp-proxy"]


def harness_load(port, concurrency, requests, out, sessions=1, warmup=WARMUP, keep=False,
                 era="legacy", tokens_file=None):
    argv = [
        HARNESS,
        "load",
        "--target",
        f"http://127.0.0.1:{port}/mcp",
        "--concurrency",
        str(concurrency),
        "--requests",
        str(requests),
        "--sessions",
        str(sessions),
        "--warmup",
        str(warmup),
        "--timeout-secs",
        "120",
        "--json",
        out,
    ]
    if keep:
        argv.append("--keep-sessions")
    if era != "legacy":
        argv += ["--era", era]
    if tokens_file:
        argv += ["--tokens-file", tokens_file]
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=180)
    with open(out) as f:
        return json.load(f)


def measure_peer(peer, rep):
    """Two fresh starts: one for cold start, idle memory and open sessions, one for the load.
    The modern era has no sessions: one start, the load levels only."""
    port = int(getattr(peer, "fixed_port", None) or peer.env.get("PORT"))
    result = {"levels": {}}
    if peer.era == "modern" or peer.levels_only:
        return measure_levels(peer, port, result, rep)

    # Start 1: cold start, idle RSS, then 100 (and 1000) open sessions.
    cold_ms, listen_ms, session = peer.start(port)
    pid = peer.proc.pid
    result["cold_start_ms"] = cold_ms
    result["listen_ms"] = listen_ms
    if session:
        delete_session(port, session)
    time.sleep(0.3)
    result["rss_idle_kib"] = rss_kib(pid)
    result["children_idle"] = len(fake_children(pid))
    result["tree_idle_kib"] = rss_kib(pid) + sum(rss_kib(d) for d in descendants(pid))
    sizes = [100, 1000] if peer.big_sessions else [100]
    opened = 0
    for size in sizes:
        out = os.path.join(OUT, f"{peer.name}-sessions{size}-rep{rep}.json")
        report = harness_load(
            port, 10, size - opened, out, sessions=size - opened, warmup=0, keep=True
        )
        opened = size
        time.sleep(0.3)
        kids = fake_children(pid)
        result[f"sessions_{size}"] = {
            "opened_now": report["sessions_opened"],
            "errors": report["errors"] + report["not_sent"],
            "initialize_p50_ms": report["initialize"]["p50_ms"],
            "gateway_rss_kib": rss_kib(pid),
            "children": len(kids),
            "children_rss_kib": sum(rss_kib(k) for k in kids),
            "tree_rss_kib": sum(rss_kib(k) for k in descendants(pid)) + rss_kib(pid),
        }
    peer.stop()
    result["orphans"] = orphans(peer)

    # Start 2: the load levels on one session each, CPU from /proc over each level.
    return measure_levels(peer, port, result, rep)


def measure_levels(peer, port, result, rep):
    second_cold, second_listen, session = peer.start(port)
    result["cold_start_ms_2"] = second_cold
    result["listen_ms_2"] = second_listen
    result.setdefault("cold_start_ms", second_cold)
    result.setdefault("listen_ms", second_listen)
    result.setdefault("orphans", 0)
    pid = peer.proc.pid
    if session:
        delete_session(port, session)
    if "rss_idle_kib" not in result:
        time.sleep(0.3)
        result["rss_idle_kib"] = rss_kib(pid)
    for c in LEVELS:
        out = os.path.join(OUT, f"{peer.name}-c{c}-rep{rep}.json")
        spawned_before = children_spawned(port) if peer.ours else None
        before, before_children, t = cpu_ticks(pid), tree_cpu_ticks(pid), time.perf_counter()
        # Sessions are kept open so that a per-session child (session scope, supergateway) is
        # still alive when its CPU is read; they are ended when the peer stops.
        report = harness_load(port, c, REQUESTS, out, keep=True, era=peer.era)
        calls = REQUESTS + WARMUP
        result["levels"][c] = {
            "rps": report["throughput_rps"],
            "p50_ms": report["latency"]["p50_ms"],
            "p90_ms": report["latency"]["p90_ms"],
            "p99_ms": report["latency"]["p99_ms"],
            "max_ms": report["latency"]["max_ms"],
            "errors": report["errors"] + report["not_sent"],
            "gateway_cpu_us_per_call": (cpu_ticks(pid) - before) / TICKS * 1e6 / calls,
            "children_cpu_us_per_call": (tree_cpu_ticks(pid) - before_children)
            / TICKS
            * 1e6
            / calls,
            "load_generator_cpu_us_per_call": report["client_cpu_us_per_call"],
            "wall_s": time.perf_counter() - t,
        }
        if spawned_before is not None:
            # Children started during the level (warm-up and calls): a legacy session scope
            # level opens one session (one child); the modern pool must not spawn per request.
            result["levels"][c]["children_spawned"] = children_spawned(port) - spawned_before
    result["rss_after_load_kib"] = rss_kib(pid)
    result["children_after_load"] = len(fake_children(pid))
    peer.stop()
    result["orphans"] += orphans(peer)
    return result


# ----------------------------------------------------------------------------------------------
# Scale: open legacy sessions and modern identities
# ----------------------------------------------------------------------------------------------


def era_ab():
    """Legacy session against 2026-07-28 sessionless calls on ONE gateway (session scope),
    interleaved ERA_REPS times per level (the era that goes first alternates), so that both eras
    see the same machine load; medians per level."""
    port = free_port()
    peer = Peer("era-ab", [GATEWAY], gateway_env("session", port), listen_line="listening on")
    samples = {c: {"legacy": [], "modern": []} for c in LEVELS}
    try:
        peer.start(port)
        pid = peer.proc.pid
        for r in range(ERA_REPS):
            for c in LEVELS:
                eras = ["legacy", "modern"] if r % 2 == 0 else ["modern", "legacy"]
                for era in eras:
                    out = os.path.join(OUT, f"era-{era}-c{c}-rep{r}.json")
                    before = cpu_ticks(pid)
                    report = harness_load(port, c, REQUESTS, out, era=era)
                    samples[c][era].append({
                        "rps": report["throughput_rps"],
                        "p50_ms": report["latency"]["p50_ms"],
                        "p99_ms": report["latency"]["p99_ms"],
                        "errors": report["errors"] + report["not_sent"],
                        "gateway_cpu_us_per_call":
                            (cpu_ticks(pid) - before) / TICKS * 1e6 / (REQUESTS + WARMUP),
                    })
    finally:
        peer.stop()
    return {c: {era: median_tree(runs) for era, runs in by.items()} | {"runs": by}
            for c, by in samples.items()}


def era_table(ab):
    head = ["level", "legacy req/s", "2026-07-28 req/s", "ratio", "legacy p50 ms",
            "2026-07-28 p50 ms", "legacy CPU us/call", "2026-07-28 CPU us/call"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in LEVELS:
        l, m = ab[c]["legacy"], ab[c]["modern"]
        lines.append("| " + " | ".join([
            f"C={c}", fmt(l["rps"]), fmt(m["rps"]), ratio(m["rps"], l["rps"]), fmt(l["p50_ms"]),
            fmt(m["p50_ms"]), fmt(l["gateway_cpu_us_per_call"]), fmt(m["gateway_cpu_us_per_call"]),
        ]) + " |")
    return "\n".join(lines)


def tree_rss_kib(pid):
    return rss_kib(pid) + sum(rss_kib(d) for d in descendants(pid))


def scale_point(peer, port, n, report, idle, idle_tree, spawned_before, cpu_before):
    pid = peer.proc.pid
    calls = SCALE_REQUESTS + report["warmup"]
    cpu = (cpu_ticks(pid) - cpu_before) / TICKS * 1e6 / calls
    time.sleep(0.3)
    kids = fake_children(pid)
    gateway_rss, tree = rss_kib(pid), tree_rss_kib(pid)
    spawned = children_spawned(port)
    return {
        "n": n,
        "rps": report["throughput_rps"],
        "p50_ms": report["latency"]["p50_ms"],
        "p99_ms": report["latency"]["p99_ms"],
        "errors": report["errors"] + report["not_sent"],
        "opened": report["sessions_opened"],
        "initialize_p50_ms": report["initialize"]["p50_ms"],
        "gateway_cpu_us_per_call": cpu,
        "gateway_rss_kib": gateway_rss,
        "children": len(kids),
        "children_rss_kib": sum(rss_kib(k) for k in kids),
        "tree_rss_kib": tree,
        "gateway_kib_per": (gateway_rss - idle) / n,
        "tree_kib_per": (tree - idle_tree) / n,
        "children_spawned": None if spawned is None else spawned - spawned_before,
    }


def scale_sessions():
    """1, 100, 1000 open legacy sessions (session scope: a child each), a fresh gateway each:
    the sessions are opened, then SCALE_REQUESTS calls at SCALE_C spread over them (call i to
    session i mod N), the sessions kept open while memory is read."""
    points = []
    for n in SCALE_SESSIONS:
        log(f"scale: {n} legacy session(s)")
        port = free_port()
        peer = Peer(f"scale-sessions{n}", [GATEWAY], gateway_env("session", port),
                    listen_line="listening on")
        try:
            _, _, session = peer.start(port)
            if session:
                delete_session(port, session)
            time.sleep(0.3)
            pid = peer.proc.pid
            idle, idle_tree = rss_kib(pid), tree_rss_kib(pid)
            spawned, cpu = children_spawned(port), cpu_ticks(pid)
            out = os.path.join(OUT, f"scale-sessions{n}.json")
            report = harness_load(port, SCALE_C, SCALE_REQUESTS, out, sessions=n,
                                  warmup=max(WARMUP, n), keep=True)
            points.append(scale_point(peer, port, n, report, idle, idle_tree, spawned, cpu))
        finally:
            peer.stop()
    return points


def start_mock_coda(tokens_json):
    proc = subprocess.Popen(
        [MOCK_CODA, "--port", "0", "--tokens-file", tokens_json],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    STARTED.append(proc)
    base = proc.stdout.readline().decode().strip()
    if not base.startswith("http://127.0.0.1:"):
        raise RuntimeError(f"mock-coda: unexpected first line {base!r}")
    return proc, base


def scale_identities():
    """1, 10, 100 identities in the modern pool: AUTH_MODE=coda against mock-coda holding 100
    bench tokens (plus the operator's); SCALE_REQUESTS sessionless calls at SCALE_C, call i with
    token i mod K, a fresh gateway each."""
    count = max(SCALE_IDENTITIES)
    users = [
        {"token": f"bench-token-{i:04d}-0123456789", "loginId": f"bench{i:04d}@example.com",
         "name": f"Bench {i}"}
        for i in range(count)
    ]
    operator = {"token": "bench-operator-token-0123456789", "loginId": "operator@example.com",
                "name": "Operator"}
    tokens_json = os.path.join(OUT, "scale-tokens.json")
    with open(tokens_json, "w") as f:
        json.dump(users + [operator], f)
    mock, base = start_mock_coda(tokens_json)
    points = []
    try:
        for k in SCALE_IDENTITIES:
            log(f"scale: {k} modern identit{'y' if k == 1 else 'ies'}")
            tokens_file = os.path.join(OUT, f"scale-tokens-{k}.txt")
            with open(tokens_file, "w") as f:
                f.write("".join(u["token"] + "\n" for u in users[:k]))
            port = free_port()
            peer = Peer(f"scale-identities{k}", [GATEWAY],
                        gateway_env("session", port, coda=(base, operator["token"])),
                        listen_line="listening on", era="modern", listen_only=True)
            try:
                peer.start(port)
                time.sleep(0.3)
                pid = peer.proc.pid
                idle, idle_tree = rss_kib(pid), tree_rss_kib(pid)
                spawned, cpu = children_spawned(port), cpu_ticks(pid)
                out = os.path.join(OUT, f"scale-identities{k}.json")
                report = harness_load(port, SCALE_C, SCALE_REQUESTS, out, warmup=max(WARMUP, k),
                                      era="modern", tokens_file=tokens_file)
                point = scale_point(peer, port, k, report, idle, idle_tree, spawned, cpu)
                point["opened"] = report["identities"]
                points.append(point)
            finally:
                peer.stop()
                os.unlink(tokens_file)
    finally:
        os.killpg(mock.pid, signal.SIGTERM)
        mock.wait(timeout=5)
        os.unlink(tokens_json)
    return points


def scale_table(sessions, identities):
    head = ["scale point", "calls/s", "p50 ms", "p99 ms", "gateway CPU us/call", "children",
            "children spawned", "gateway RSS MiB", "tree RSS MiB", "gateway KiB per",
            "tree KiB per", "errors"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, points in (("legacy sessions", sessions), ("modern identities", identities)):
        for p in points:
            lines.append("| " + " | ".join([
                f"{p['n']} {label}", fmt(p["rps"]), fmt(p["p50_ms"]), fmt(p["p99_ms"]),
                fmt(p["gateway_cpu_us_per_call"]), str(p["children"]),
                fmt(p["children_spawned"]), fmt(p["gateway_rss_kib"] / 1024),
                fmt(p["tree_rss_kib"] / 1024), fmt(p["gateway_kib_per"]),
                fmt(p["tree_kib_per"]), str(p["errors"]),
            ]) + " |")
    lines.append("")
    lines.append("KiB per = (RSS at the point - RSS of the fresh gateway) / sessions or identities;")
    lines.append("tree = the gateway plus its fake-mcp-server children.")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Plots: hand-written SVG
# ----------------------------------------------------------------------------------------------

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]


def esc(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def panel(x0, y0, w, h, title, labels, series):
    """A line panel: categorical x (labels), series = [(name, [y or None per label])]."""
    out = [f'<text x="{x0 + w / 2}" y="{y0 - 8}" text-anchor="middle" font-size="13" '
           f'font-weight="bold">{esc(title)}</text>',
           f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#999"/>']
    values = [v for _, ys in series for v in ys if v is not None]
    top = max(values) * 1.15 if values and max(values) > 0 else 1
    for i in range(5):
        value = top * i / 4
        y = y0 + h - h * i / 4
        out.append(f'<line x1="{x0}" y1="{y}" x2="{x0 + w}" y2="{y}" stroke="#eee"/>')
        out.append(f'<text x="{x0 - 4}" y="{y + 4}" text-anchor="end" font-size="10">'
                   f'{esc(fmt(float(value)))}</text>')
    step = w / max(len(labels), 1)
    xs = [x0 + step * (i + 0.5) for i in range(len(labels))]
    for x, label in zip(xs, labels):
        out.append(f'<text x="{x}" y="{y0 + h + 14}" text-anchor="middle" font-size="11">'
                   f'{esc(label)}</text>')
    for index, (name, ys) in enumerate(series):
        color = COLORS[index % len(COLORS)]
        points = [(x, y0 + h - h * v / top) for x, v in zip(xs, ys) if v is not None]
        if len(points) > 1:
            out.append('<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>'.format(
                color, " ".join(f"{x:.1f},{y:.1f}" for x, y in points)))
        for (x, y), v in zip(points, [v for v in ys if v is not None]):
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}"/>')
            out.append(f'<text x="{x + 5:.1f}" y="{y - 5:.1f}" font-size="10" fill="{color}">'
                       f'{esc(fmt(float(v)))}</text>')
        out.append(f'<text x="{x0 + 6}" y="{y0 + 14 + 13 * index}" font-size="11" '
                   f'fill="{color}">{esc(name)}</text>')
    return out


def bars(x0, y0, w, h, title, items):
    """A horizontal bar panel: items = [(label, value)]."""
    out = [f'<text x="{x0 + w / 2}" y="{y0 - 8}" text-anchor="middle" font-size="13" '
           f'font-weight="bold">{esc(title)}</text>']
    values = [v for _, v in items if v is not None]
    top = max(values) * 1.2 if values and max(values) > 0 else 1
    row = h / max(len(items), 1)
    for index, (label, value) in enumerate(items):
        y = y0 + row * index
        out.append(f'<text x="{x0 - 6}" y="{y + row * 0.6}" text-anchor="end" font-size="11">'
                   f'{esc(label)}</text>')
        if value is None:
            continue
        width = w * value / top
        out.append(f'<rect x="{x0}" y="{y + row * 0.15}" width="{width:.1f}" height="{row * 0.7:.1f}" '
                   f'fill="{COLORS[index % len(COLORS)]}"/>')
        out.append(f'<text x="{x0 + width + 4:.1f}" y="{y + row * 0.6}" font-size="11">'
                   f'{esc(fmt(float(value)))}</text>')
    return out


def write_svg(path, width, height, parts, caption):
    body = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif">',
            f'<rect width="{width}" height="{height}" fill="white"/>']
    body += parts
    body.append(f'<text x="10" y="{height - 8}" font-size="10" fill="#555">{esc(caption)}</text>')
    body.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(body) + "\n")


def plot_scale(sessions, identities, caption):
    s_labels = [f"{p['n']} sessions" for p in sessions]
    i_labels = [f"{p['n']} identities" for p in identities]
    parts = []
    w, h = 380, 170
    rows = [
        ("calls/s", "rps", None),
        ("p99 ms", "p99_ms", None),
        ("memory per session / identity, KiB", "tree_kib_per", "gateway_kib_per"),
    ]
    for r, (title, key, key2) in enumerate(rows):
        y = 50 + r * (h + 60)
        for c, (what, labels, points) in enumerate(
            (("legacy, session scope", s_labels, sessions),
             ("2026-07-28, per-identity pool", i_labels, identities))
        ):
            series = [(("gateway + children" if key2 else title), [p[key] for p in points])]
            if key2:
                series.append(("gateway alone", [p[key2] for p in points]))
            parts += panel(70 + c * (w + 90), y, w, h, f"{what}: {title}", labels, series)
    write_svg(os.path.join(OUT, "scale.svg"), 2 * w + 180, 3 * (h + 60) + 50, parts, caption)


def plot_peers(summary, caption):
    names = [n for n in ["floor"] + PEERS if n in summary]
    top = max(LEVELS)
    key = lambda p, c: p["levels"][c] if c in p["levels"] else p["levels"][str(c)]  # noqa: E731
    rps = [(n, key(summary[n], top)["rps"]) for n in names]
    p50 = [(n, key(summary[n], min(LEVELS))["p50_ms"]) for n in names]
    parts = bars(150, 40, 420, 200, f"calls/s at C={top} (higher is better)", rps)
    parts += bars(150, 300, 420, 200, f"p50 ms at C={min(LEVELS)} (lower is better)", p50)
    write_svg(os.path.join(OUT, "peers.svg"), 660, 540, parts, caption)


def orphans(peer):
    """fake-mcp-server processes of the peer's process group still alive after it stopped."""
    time.sleep(0.2)
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit() and comm(int(entry)).startswith("fake-mcp-serv"):
            try:
                if os.getpgid(int(entry)) == peer.proc.pid:
                    count += 1
            except OSError:
                pass
    return count


def measure_floor(rep):
    result = {"levels": {}}
    for c in LEVELS:
        out = os.path.join(OUT, f"floor-c{c}-rep{rep}.json")
        subprocess.run(
            [FLOOR, "--server", FAKE, "--concurrency", str(c), "--requests", str(REQUESTS),
             "--warmup", str(WARMUP), "--json", out],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
        )
        with open(out) as f:
            report = json.load(f)
        result["levels"][c] = {
            "rps": report["throughput_rps"],
            "p50_ms": report["latency"]["p50_ms"],
            "p90_ms": report["latency"]["p90_ms"],
            "p99_ms": report["latency"]["p99_ms"],
            "max_ms": report["latency"]["max_ms"],
            "errors": report["errors"],
            "children_cpu_us_per_call": report["child_cpu_us_per_call"],
        }
        result["cold_start_ms"] = report["cold_start_ms"]
        result["rss_idle_kib"] = report["child_idle_rss_kib"]
    return result


# ----------------------------------------------------------------------------------------------
# Aggregation and the table
# ----------------------------------------------------------------------------------------------


def median_tree(runs):
    """Medians of every numeric leaf over the reps (same shape as one run)."""
    first = runs[0]
    if isinstance(first, dict):
        return {k: median_tree([r[k] for r in runs if k in r]) for k in first}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        values = [r for r in runs if r is not None]
        return statistics.median(values) if values else None
    return first


def fmt(value, digits=3):
    if value is None:
        return "–"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.{digits}f}"
    return str(value)


def ratio(a, b):
    if a is None or b in (None, 0):
        return "–"
    return f"{a / b:.2f}"


COLUMNS = [
    ("floor", "stdio floor"),
    ("gateway-session", "gw session"),
    ("gateway-shared", "gw shared"),
    ("gateway-modern", "gw 2026-07-28"),
    ("http-floor", "http floor"),
    ("supergateway", "supergateway"),
    ("mcp-proxy", "mcp-proxy"),
]


def level(p, c):
    return p["levels"][c] if c in p["levels"] else p["levels"][str(c)]


def table(summary):
    cols = [(k, label) for k, label in COLUMNS if k in summary]
    rows = []

    def row(name, get):
        values = []
        for k, _ in cols:
            try:
                values.append(fmt(get(summary[k], k)))
            except (KeyError, TypeError):
                values.append("–")
        rows.append([name] + values)

    mib = lambda kib: None if kib is None else kib / 1024  # noqa: E731
    for c in LEVELS:
        row(f"req/s C={c}", lambda p, k, c=c: level(p, c)["rps"])
    for c in LEVELS:
        row(f"p50 ms C={c}", lambda p, k, c=c: level(p, c)["p50_ms"])
        row(f"p99 ms C={c}", lambda p, k, c=c: level(p, c)["p99_ms"])
    for c in LEVELS:
        row(f"gateway CPU us/call C={c}",
            lambda p, k, c=c: None if k == "floor" else level(p, c)["gateway_cpu_us_per_call"])
        row(f"child CPU us/call C={c}", lambda p, k, c=c: level(p, c)["children_cpu_us_per_call"])
    for c in LEVELS:
        row(f"children spawned during C={c}", lambda p, k, c=c: level(p, c).get("children_spawned"))
    row("RSS idle MiB", lambda p, k: mib(p["rss_idle_kib"]))
    row("gateway RSS after load MiB", lambda p, k: mib(p["rss_after_load_kib"]))
    row("gateway RSS 100 sessions MiB", lambda p, k: mib(p["sessions_100"]["gateway_rss_kib"]))
    row("children RSS 100 sessions MiB", lambda p, k: mib(p["sessions_100"]["children_rss_kib"]))
    row("children at 100 sessions", lambda p, k: p["sessions_100"]["children"])
    row("tree KiB per session", lambda p, k: summary["derived"][k]["tree_kib_per_session"])
    row("KiB per session (gateway side)", lambda p, k: summary["derived"][k]["gateway_kib_per_session"])
    row("sessions per GiB (gateway + children)", lambda p, k: summary["derived"][k]["sessions_per_gib"])
    row("gateway RSS 1000 sessions MiB", lambda p, k: mib(p["sessions_1000"]["gateway_rss_kib"]))
    row("children at 1000 sessions", lambda p, k: p["sessions_1000"]["children"])
    row("initialize p50 ms (100 sessions)", lambda p, k: p["sessions_100"]["initialize_p50_ms"])
    row("start to first initialize ms",
        lambda p, k: None if p.get("cold_start_ms") in (None, 0) else p["cold_start_ms"])
    row("start to listening ms", lambda p, k: p.get("listen_ms"))

    head = ["metric (median of reps)"] + [label for _, label in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def ratio_table(summary):
    """Ours against each peer and the floor: req/s ours/theirs, latency and CPU theirs/ours."""
    ours = [k for k in ("gateway-session", "gateway-shared", "gateway-modern") if k in summary]
    others = [k for k in ("supergateway", "mcp-proxy", "http-floor", "floor") if k in summary]
    head = ["ratio (higher is better for us)"] + [f"{o} vs {t}" for o in ours for t in others]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in LEVELS:
        cells = [ratio(level(summary[o], c)["rps"], level(summary[t], c)["rps"])
                 for o in ours for t in others]
        lines.append("| " + " | ".join([f"req/s C={c} (ours/theirs)"] + cells) + " |")
    for c in LEVELS:
        cells = [ratio(level(summary[t], c)["p50_ms"], level(summary[o], c)["p50_ms"])
                 for o in ours for t in others]
        lines.append("| " + " | ".join([f"p50 C={c} (theirs/ours)"] + cells) + " |")
    return "\n".join(lines)


def derive(summary):
    derived = {}
    for name in PEERS:
        p = summary.get(name)
        if not p or "sessions_100" not in p:
            continue
        s100 = p["sessions_100"]
        # Memory per open session over the idle process (fresh start, nothing else done).
        gateway_side = (s100["gateway_rss_kib"] - p["rss_idle_kib"]) / 100
        per_session_tree = max((s100["tree_rss_kib"] - p["tree_idle_kib"]) / 100, 0.001)
        if "sessions_1000" in p:
            s1000 = p["sessions_1000"]
            gateway_side = (s1000["gateway_rss_kib"] - p["rss_idle_kib"]) / 1000
            per_session_tree = max((s1000["tree_rss_kib"] - p["tree_idle_kib"]) / 1000, 0.001)
        derived[name] = {
            "tree_kib_per_session": per_session_tree,
            "gateway_kib_per_session": gateway_side,
            "sessions_per_gib": 1024 * 1024 / per_session_tree,
        }
    return derived


def targets(summary, scale, ab=None):
    """Issue 15's targets, measured in this run."""
    out = []
    lo, hi = min(LEVELS), max(LEVELS)
    floor = summary.get("floor")
    sg = summary.get("supergateway")
    ours = [k for k in ("gateway-session", "gateway-shared", "gateway-modern") if k in summary]
    if floor and ours:
        best = max(level(summary[k], hi)["rps"] for k in ours)
        x = level(floor, hi)["rps"] / best
        out.append((f"stdio floor well above the gateway at C={hi} (floor / best gateway)",
                    f"{x:.2f}x", x >= 1.5))
    for name in ours:
        p = summary[name]
        if sg:
            x = level(p, hi)["rps"] / level(sg, hi)["rps"]
            out.append((f"req/s at C={hi} >= 6x supergateway ({name})", f"{x:.1f}x", x >= 6))
            x = level(sg, lo)["p50_ms"] / level(p, lo)["p50_ms"]
            out.append((f"p50 at C={lo} >= 3x lower than supergateway ({name})", f"{x:.1f}x", x >= 3))
        hf = summary.get("http-floor")
        for c, bound in ((hi, 15), (lo, 25)):
            cpu = level(p, c)["gateway_cpu_us_per_call"]
            # What any bridge pays on this machine (loopback TCP, pipes, wake-ups), for scale.
            floor_cpu = level(hf, c)["gateway_cpu_us_per_call"] if hf else None
            shown = f"{cpu:.1f} us" + (
                f" (http-floor {floor_cpu:.1f} us, own {cpu - floor_cpu:.1f} us)"
                if floor_cpu is not None else "")
            out.append((f"gateway CPU per call <= {bound} us at C={c} ({name})", shown,
                        cpu <= bound))
    if ab:
        worst = min(ab[c]["modern"]["rps"] / ab[c]["legacy"]["rps"] for c in LEVELS)
        out.append(("2026-07-28 calls >= 0.9x the legacy session rate (interleaved on one "
                    "gateway, worst level)", f"{worst:.2f}x", worst >= 0.9))
    if "gateway-modern" in summary and "gateway-session" in summary:
        m, s = summary["gateway-modern"], summary["gateway-session"]
        worst = min(level(m, c)["rps"] / level(s, c)["rps"] for c in LEVELS)
        out.append(("2026-07-28 calls >= 0.9x the legacy session rate (peer table, worst level)",
                    f"{worst:.2f}x", worst >= 0.9))
        if floor:
            added = level(m, lo)["p50_ms"] - level(floor, lo)["p50_ms"]
            hf = summary.get("http-floor")
            shown = f"{added:.3f} ms" + (
                f" (http-floor adds {level(hf, lo)['p50_ms'] - level(floor, lo)['p50_ms']:.3f} ms)"
                if hf else "")
            out.append((f"2026-07-28 added p50 over the stdio floor <= 0.05 ms at C={lo}",
                        shown, added <= 0.05))
        spawned = max(level(m, c).get("children_spawned") or 0 for c in LEVELS)
        out.append(("2026-07-28: no spawn per request (most children spawned in one level of "
                    f"{REQUESTS + WARMUP} calls)", f"{spawned}", spawned <= 4))
    for kind, points in (("session", scale.get("sessions", [])),
                         ("identity", scale.get("identities", []))):
        if points:
            per = max(p["tree_kib_per"] for p in points if p["n"] > 1) if len(points) > 1 else None
            if per is not None:
                out.append((f"memory per {kind} reported (gateway + children, worst point)",
                            f"{per:.0f} KiB", True))
    return out


def main():
    needed = [HARNESS, GATEWAY, FAKE, FLOOR, HTTP_FLOOR]
    if "peers" in PARTS:
        needed += [SUPERGATEWAY, MCP_PROXY]
    if "scale" in PARTS:
        needed.append(MOCK_CODA)
    for path in needed:
        if not os.path.exists(path):
            sys.exit(f"bench: {path} is missing (run bench/run.sh)")
    os.makedirs(OUT, exist_ok=True)
    info = machine()
    log("load generator self-test (mcp-harness load --self-test)")
    self_test_file = os.path.join(OUT, "self-test.json")
    subprocess.run(
        [HARNESS, "load", "--self-test", "--concurrency", "64", "--requests", "100000",
         "--warmup", "2000", "--json", self_test_file],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
    )
    with open(self_test_file) as f:
        self_test = json.load(f)
    loads = [("start", open("/proc/loadavg").read().split()[:3])]
    runs = {"floor": []}
    if "peers" in PARTS:
        runs.update({name: [] for name in PEERS})
        for rep in range(REPS):
            log(f"rep {rep + 1}/{REPS}: stdio floor")
            runs["floor"].append(measure_floor(rep))
            peers = make_peers(free_port)
            order = peers[rep % len(peers):] + peers[: rep % len(peers)]
            for peer in order:
                log(f"rep {rep + 1}/{REPS}: {peer.name}")
                try:
                    runs[peer.name].append(measure_peer(peer, rep))
                finally:
                    peer.stop()
            loads.append((f"after rep {rep + 1}", open("/proc/loadavg").read().split()[:3]))
    else:
        runs["floor"].append(measure_floor(0))
    summary = {name: median_tree(r) for name, r in runs.items() if r}
    summary["derived"] = derive(summary)
    ab = None
    if "era" in PARTS:
        log(f"eras interleaved on one gateway, {ERA_REPS} reps")
        ab = era_ab()
        loads.append(("after the era A/B", open("/proc/loadavg").read().split()[:3]))
    scale = {}
    if "scale" in PARTS:
        scale["sessions"] = scale_sessions()
        loads.append(("after the session scale", open("/proc/loadavg").read().split()[:3]))
        scale["identities"] = scale_identities()
        loads.append(("after the identity scale", open("/proc/loadavg").read().split()[:3]))
    info["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    info["loadavg_during"] = loads
    versions = {
        "node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip(),
        "supergateway": json.load(open(os.path.join(HERE, "node_modules", "supergateway", "package.json")))["version"]
        if os.path.exists(SUPERGATEWAY) else None,
        "mcp-proxy": subprocess.run([MCP_PROXY, "--version"], capture_output=True, text=True).stdout.strip()
        if os.path.exists(MCP_PROXY) else None,
    }
    checks = targets(summary, scale, ab)
    document = {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": info,
        "versions": versions,
        "requests_per_level": REQUESTS,
        "warmup": WARMUP,
        "reps": REPS,
        "levels": LEVELS,
        "parts": PARTS,
        "scale_requests": SCALE_REQUESTS,
        "scale_concurrency": SCALE_C,
        "gateway_env": os.environ.get("BENCH_GATEWAY_ENV", ""),
        "load_generator_self_test": {
            "rps": self_test["throughput_rps"],
            "errors": self_test["errors"],
            "client_cpu_us_per_call": self_test["client_cpu_us_per_call"],
            "server_cpu_us_per_call": self_test.get("server_cpu_us_per_call"),
        },
        "summary": summary,
        "scale": scale,
        "era_ab": ab,
        "targets": [{"target": t, "measured": m, "met": ok} for t, m, ok in checks],
        "runs": runs,
    }
    with open(os.path.join(OUT, "bench.json"), "w") as f:
        json.dump(document, f, indent=2)
    load_text = "; ".join(f"{when} {' '.join(avg)}" for when, avg in loads)
    caption = (f"just bench, {document['date_utc']}, {info['nproc']} cores, load average: "
               f"{load_text}")
    text = [
        f"bench: {info['nproc']} cores ({info['cpu_model']}), kernel {info['kernel']}",
        f"load average (1/5/15 min): {load_text}",
        f"{REQUESTS} calls per level (+{WARMUP} warm-up), {REPS} reps, medians; "
        f"supergateway {versions['supergateway']} on node {versions['node']}; "
        f"{versions['mcp-proxy']}; "
        f"extra gateway env: {os.environ.get('BENCH_GATEWAY_ENV', '') or 'none'}",
        f"load generator ceiling (mcp-harness load --self-test, C=64, trivial server in-process): "
        f"{self_test['throughput_rps']:,.0f} req/s, {self_test['client_cpu_us_per_call']:.1f} us "
        f"CPU per call, {self_test['errors']} errors",
        "",
    ]
    if "peers" in PARTS:
        text += [table(summary), "", ratio_table(summary), "",
                 "Ratios: req/s ours divided by theirs; p50 theirs divided by ours.", ""]
        plot_peers(summary, caption)
    if ab:
        text += [f"Eras interleaved on one gateway (session scope), {ERA_REPS} reps, medians:", "",
                 era_table(ab), ""]
    if scale:
        text += [f"Scale: {SCALE_REQUESTS} calls (+ warm-up) at C={SCALE_C} per point, a fresh "
                 "gateway per point.", "", scale_table(scale["sessions"], scale["identities"]), ""]
        plot_scale(scale["sessions"], scale["identities"], caption)
    text += ["| target | measured | met |", "|---|---|---|"]
    text += [f"| {t} | {m} | {'yes' if ok else 'NO'} |" for t, m, ok in checks]
    errors = sum(
        lv["errors"] for p in runs.values() for run in p for lv in run["levels"].values()
    ) + sum(
        run[k]["errors"] for p in runs.values() for run in p for k in run if k.startswith("sessions_")
    ) + sum(p["errors"] for points in scale.values() for p in points) + sum(
        run["errors"] for by in (ab or {}).values() for era in ("legacy", "modern")
        for run in by["runs"][era])
    orphans_total = sum(run.get("orphans", 0) for p in runs.values() for run in p)
    text.append("")
    text.append(f"fake-mcp-server processes left after a peer stopped, all runs: {orphans_total}")
    text.append("")
    text.append(f"errors over all runs: {errors}")
    report = "\n".join(text) + "\n"
    with open(os.path.join(OUT, "bench.md"), "w") as f:
        f.write(report)
    print(report)
    return 0 if errors == 0 else 1


def cleanup():
    for proc in STARTED:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


if __name__ == "__main__":
    code = 1
    try:
        code = main()
    finally:
        cleanup()
    sys.exit(code)
