#!/usr/bin/env python3
"""Side-by-side benchmark: stdio floor, coda-mcp-gateway (session and shared child scope) and
supergateway (stateful), all in front of the same fake-mcp-server, on 127.0.0.1 only.

Run through `bash bench/run.sh` (`just bench`), which builds the binaries and installs the pinned
supergateway first. Standard library only. Environment knobs:

  BENCH_REQUESTS  calls per concurrency level (default 5000)
  BENCH_REPS      repetitions, peer order rotated each rep; medians are reported (default 3)
  BENCH_LEVELS    concurrency levels (default "1,8,64")
  BENCH_OUT       output directory (default bench/results)
  BENCH_GATEWAY_ENV  extra VAR=VALUE pairs for our gateway, space-separated
                     (e.g. "TOKIO_WORKER_THREADS=1")

Every figure comes from /proc and from `mcp-harness load --json` / `stdio-floor --json`:
  * requests/s, p50, p99: the load generator's report (every reply's id and echoed text checked);
  * gateway CPU us per call: utime+stime of the gateway process alone over one load level,
    divided by the calls; the children's CPU is reported apart;
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
SUPERGATEWAY = os.path.join(HERE, "node_modules", ".bin", "supergateway")
LOOPBACK = os.path.join(HERE, "loopback.cjs")

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "5000"))
REPS = int(os.environ.get("BENCH_REPS", "3"))
LEVELS = [int(x) for x in os.environ.get("BENCH_LEVELS", "1,8,64").split(",")]
OUT = os.environ.get("BENCH_OUT", os.path.join(HERE, "results"))
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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------------------------
# Peers
# ----------------------------------------------------------------------------------------------


def gateway_env(scope, port):
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
    for pair in os.environ.get("BENCH_GATEWAY_ENV", "").split():
        key, _, value = pair.partition("=")
        env[key] = value
    return env


class Peer:
    def __init__(self, name, argv, env, listen_line=None, big_sessions=False):
        self.name, self.argv, self.env = name, argv, env
        self.listen_line = listen_line
        self.big_sessions = big_sessions
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
    gw = lambda scope: Peer(  # noqa: E731
        f"gateway-{scope}",
        [GATEWAY],
        gateway_env(scope, port_for()),
        listen_line="listening on",
        big_sessions=(scope == "shared"),
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
    return [gw("session"), gw("shared"), sg]


def harness_load(port, concurrency, requests, out, sessions=1, warmup=WARMUP, keep=False):
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
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=180)
    with open(out) as f:
        return json.load(f)


def measure_peer(peer, rep):
    """Two fresh starts: one for cold start, idle memory and open sessions, one for the load."""
    port = int(getattr(peer, "fixed_port", None) or peer.env.get("PORT"))
    result = {"levels": {}}

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
    second_cold, second_listen, session = peer.start(port)
    result["cold_start_ms_2"] = second_cold
    result["listen_ms_2"] = second_listen
    pid = peer.proc.pid
    if session:
        delete_session(port, session)
    for c in LEVELS:
        out = os.path.join(OUT, f"{peer.name}-c{c}-rep{rep}.json")
        before, before_children, t = cpu_ticks(pid), tree_cpu_ticks(pid), time.perf_counter()
        # Sessions are kept open so that a per-session child (session scope, supergateway) is
        # still alive when its CPU is read; they are ended when the peer stops.
        report = harness_load(port, c, REQUESTS, out, keep=True)
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
    result["rss_after_load_kib"] = rss_kib(pid)
    result["children_after_load"] = len(fake_children(pid))
    peer.stop()
    result["orphans"] += orphans(peer)
    return result


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


def table(summary):
    floor = summary["floor"]
    s, h, g = summary["gateway-session"], summary["gateway-shared"], summary["supergateway"]
    rows = []

    def row(name, f, vs, vh, vg, invert=False):
        # Ratios read "how many times better than": throughput ours/theirs, the rest theirs/ours.
        if invert:
            r = [ratio(vs, f), ratio(vh, f), ratio(vs, vg), ratio(vh, vg)]
        else:
            r = [ratio(f, vs), ratio(f, vh), ratio(vg, vs), ratio(vg, vh)]
        rows.append([name, fmt(f), fmt(vs), fmt(vh), fmt(vg)] + r)

    for c in LEVELS:
        key = c if c in floor["levels"] else str(c)
        lv = lambda p: p["levels"][key]  # noqa: E731
        row(f"req/s C={c}", lv(floor)["rps"], lv(s)["rps"], lv(h)["rps"], lv(g)["rps"], invert=True)
    for c in LEVELS:
        key = c if c in floor["levels"] else str(c)
        lv = lambda p: p["levels"][key]  # noqa: E731
        row(f"p50 ms C={c}", lv(floor)["p50_ms"], lv(s)["p50_ms"], lv(h)["p50_ms"], lv(g)["p50_ms"])
        row(f"p99 ms C={c}", lv(floor)["p99_ms"], lv(s)["p99_ms"], lv(h)["p99_ms"], lv(g)["p99_ms"])
    for c in LEVELS:
        key = c if c in floor["levels"] else str(c)
        lv = lambda p: p["levels"][key]  # noqa: E731
        row(
            f"gateway CPU us/call C={c}",
            None,
            lv(s)["gateway_cpu_us_per_call"],
            lv(h)["gateway_cpu_us_per_call"],
            lv(g)["gateway_cpu_us_per_call"],
        )
        row(
            f"child CPU us/call C={c}",
            lv(floor)["children_cpu_us_per_call"],
            lv(s)["children_cpu_us_per_call"],
            lv(h)["children_cpu_us_per_call"],
            lv(g)["children_cpu_us_per_call"],
        )
    mib = lambda kib: None if kib is None else kib / 1024  # noqa: E731
    row("gateway RSS idle MiB", mib(floor["rss_idle_kib"]), mib(s["rss_idle_kib"]),
        mib(h["rss_idle_kib"]), mib(g["rss_idle_kib"]))
    row("gateway RSS after load MiB", None, mib(s["rss_after_load_kib"]),
        mib(h["rss_after_load_kib"]), mib(g["rss_after_load_kib"]))
    row("gateway RSS 100 sessions MiB", None, mib(s["sessions_100"]["gateway_rss_kib"]),
        mib(h["sessions_100"]["gateway_rss_kib"]), mib(g["sessions_100"]["gateway_rss_kib"]))
    row("children RSS 100 sessions MiB", None, mib(s["sessions_100"]["children_rss_kib"]),
        mib(h["sessions_100"]["children_rss_kib"]), mib(g["sessions_100"]["children_rss_kib"]))
    row("tree KiB per session", None,
        summary["derived"]["gateway-session"]["tree_kib_per_session"],
        summary["derived"]["gateway-shared"]["tree_kib_per_session"],
        summary["derived"]["supergateway"]["tree_kib_per_session"])
    row("children at 100 sessions", 1, s["sessions_100"]["children"],
        h["sessions_100"]["children"], g["sessions_100"]["children"])
    row("gateway RSS 1000 sessions MiB", None, None,
        mib(h["sessions_1000"]["gateway_rss_kib"]), None)
    row("children at 1000 sessions", None, None, h["sessions_1000"]["children"], None)
    row("initialize p50 ms (100 sessions)", None, s["sessions_100"]["initialize_p50_ms"],
        h["sessions_100"]["initialize_p50_ms"], g["sessions_100"]["initialize_p50_ms"])
    row("start to first initialize ms", floor["cold_start_ms"], s["cold_start_ms"],
        h["cold_start_ms"], g["cold_start_ms"])
    row("start to listening ms", None, s["listen_ms"], h["listen_ms"], None)
    row("sessions per GiB (gateway + children)", None, summary["derived"]["gateway-session"]["sessions_per_gib"],
        summary["derived"]["gateway-shared"]["sessions_per_gib"],
        summary["derived"]["supergateway"]["sessions_per_gib"], invert=True)
    row("KiB per session (gateway side)", None,
        summary["derived"]["gateway-session"]["gateway_kib_per_session"],
        summary["derived"]["gateway-shared"]["gateway_kib_per_session"],
        summary["derived"]["supergateway"]["gateway_kib_per_session"])

    head = ["metric (median of reps)", "stdio floor", "gw session", "gw shared", "supergateway",
            "floor/session", "floor/shared", "sg/session", "sg/shared"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines.append("")
    lines.append("Ratios: for req/s and sessions per GiB, ours divided by theirs (higher is better);")
    lines.append("for latency, CPU, memory and time, theirs divided by ours (higher is better for us).")
    return "\n".join(lines)


def derive(summary):
    derived = {}
    for name in ("gateway-session", "gateway-shared", "supergateway"):
        p = summary[name]
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


def targets(summary):
    floor, s, h, g = (summary[k] for k in ("floor", "gateway-session", "gateway-shared", "supergateway"))
    key = lambda p, c: p["levels"][c] if c in p["levels"] else p["levels"][str(c)]  # noqa: E731
    out = []
    for name, p in (("session", s), ("shared", h)):
        added = key(p, 1)["p50_ms"] - key(floor, 1)["p50_ms"]
        out.append((f"added p50 at C=1 <= 0.1 ms ({name})", f"{added:.3f} ms", added <= 0.1))
        x = key(p, 64)["rps"] / key(g, 64)["rps"]
        out.append((f"req/s at C=64 >= 20x supergateway ({name})", f"{x:.1f}x", x >= 20))
        cpu = max(key(p, c)["gateway_cpu_us_per_call"] for c in LEVELS)
        out.append((f"gateway CPU per call <= 50 us, worst level ({name})", f"{cpu:.1f} us", cpu <= 50))
        idle = p["rss_idle_kib"] / 1024
        out.append((f"idle RSS <= 20 MiB ({name})", f"{idle:.1f} MiB", idle <= 20))
        listen = p["listen_ms"]
        out.append((f"start to listening <= 100 ms ({name})", f"{listen:.1f} ms", listen <= 100))
    per = summary["derived"]["gateway-shared"]["gateway_kib_per_session"]
    out.append(("gateway memory per open session <= 64 KiB (shared)", f"{per:.1f} KiB", per <= 64))
    return out


def main():
    for path in (HARNESS, GATEWAY, FAKE, FLOOR, SUPERGATEWAY):
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
    runs = {"floor": [], "gateway-session": [], "gateway-shared": [], "supergateway": []}
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
    summary = {name: median_tree(r) for name, r in runs.items()}
    summary["derived"] = derive(summary)
    info["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    versions = {
        "node": subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip(),
        "supergateway": json.load(open(os.path.join(HERE, "node_modules", "supergateway", "package.json")))["version"],
    }
    checks = targets(summary)
    document = {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": info,
        "versions": versions,
        "requests_per_level": REQUESTS,
        "warmup": WARMUP,
        "reps": REPS,
        "levels": LEVELS,
        "gateway_env": os.environ.get("BENCH_GATEWAY_ENV", ""),
        "load_generator_self_test": {
            "rps": self_test["throughput_rps"],
            "errors": self_test["errors"],
            "client_cpu_us_per_call": self_test["client_cpu_us_per_call"],
            "server_cpu_us_per_call": self_test.get("server_cpu_us_per_call"),
        },
        "summary": summary,
        "targets": [{"target": t, "measured": m, "met": ok} for t, m, ok in checks],
        "runs": runs,
    }
    with open(os.path.join(OUT, "bench.json"), "w") as f:
        json.dump(document, f, indent=2)
    text = [
        f"bench: {info['nproc']} cores ({info['cpu_model']}), kernel {info['kernel']}, "
        f"load average {' '.join(info['loadavg_start'])} -> {' '.join(info['loadavg_end'])}",
        f"{REQUESTS} calls per level (+{WARMUP} warm-up), {REPS} reps, medians; "
        f"supergateway {versions['supergateway']} on node {versions['node']}; "
        f"extra gateway env: {os.environ.get('BENCH_GATEWAY_ENV', '') or 'none'}",
        f"load generator ceiling (mcp-harness load --self-test, C=64, trivial server in-process): "
        f"{self_test['throughput_rps']:,.0f} req/s, {self_test['client_cpu_us_per_call']:.1f} us "
        f"CPU per call, {self_test['errors']} errors",
        "",
        table(summary),
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    text += [f"| {t} | {m} | {'yes' if ok else 'NO'} |" for t, m, ok in checks]
    errors = sum(
        lv["errors"] for p in runs.values() for run in p for lv in run["levels"].values()
    ) + sum(
        run[k]["errors"] for p in runs.values() for run in p for k in run if k.startswith("sessions_")
    )
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
    try:
        code = main()
    finally:
        cleanup()
    sys.exit(code)
