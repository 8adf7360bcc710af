#!/usr/bin/env python3
"""Instructions per request: a Tessera server under callgrind, counted.

Wall-clock figures on a shared two-core machine spread by 10-30% from run
to run, so they cannot show whether a change costs 5%. This counts what
the server's own code executes instead: the server runs under
`valgrind --tool=callgrind` with instrumentation off; for each scenario
the client warms up, switches counting on, sends exactly N requests,
dumps the counters and switches counting off again. The figure is the
user-space instructions (callgrind's `Ir`) of every server thread during
the scenario, divided by N. The kernel's share (sockets, fsync) is not
counted, and callgrind runs one thread at a time, so group commits form
differently than at full speed; both binaries of a comparison are
measured the same way, and the runs repeat to show the spread.

Usage (release builds, valgrind installed):

    python3 bench/instructions.py BINARY [BINARY ...] [--runs 2] [--n 1000]
        [--json PATH]

Each BINARY is a `tessera` executable; the table compares every binary
with the first. Needs only Python's standard library.
"""

import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import http.client

PASSWORD = "bench-password-0123456789"
TOKEN_PATH = "/_security/oauth2/token"
AUTHENTICATE_PATH = "/_security/_authenticate"
CONNECTIONS = 8
SYSCALL_KINDS = ("read", "recvfrom", "writev", "write", "sendto", "epoll_wait", "futex",
                 "pread64", "pwrite64", "fdatasync", "sched_yield", "getrandom")


def basic(user, password):
    raw = f"{user}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


ELASTIC = basic("elastic", PASSWORD)


class Server:
    """One `tessera serve` under callgrind, on an embedded store."""

    def __init__(self, binary, work, what):
        self.work, self.what, self.keep = work, what, None
        self.out = os.path.join(work, "callgrind.out")
        self.log = open(os.path.join(work, "server.log"), "w+b")
        env = dict(os.environ, TESSERA_BOOTSTRAP_PASSWORD=PASSWORD, TESSERA_LOG="info")
        cmd = [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(work, "data")]
        if what == "instructions":
            cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                   f"--callgrind-out-file={self.out}", "--dump-instr=no", *cmd]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.addr = self._wait_for_address()

    def _wait_for_address(self):
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited: see {self.log.name}")
            self.log.seek(0)
            m = re.search(rb"tessera is listening addr=([0-9.]+):([0-9]+)", self.log.read())
            if m:
                return (m.group(1).decode(), int(m.group(2)))
            time.sleep(0.2)
        raise SystemExit("the server did not start in 300 s")

    def control(self, *args):
        subprocess.run(["callgrind_control", *args, str(self.proc.pid)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def count(self, name, send):
        """Instructions (or system calls) of the server while `send()` runs."""
        if self.what == "syscalls":
            return self._count_syscalls(send)
        for f in os.listdir(self.work):
            if f.startswith("callgrind.out"):
                os.remove(os.path.join(self.work, f))
        self.control("--instr=on")
        self.control("--zero")
        send()
        self.control(f"--dump={name}")
        self.control("--instr=off")
        total = 0
        for f in os.listdir(self.work):
            if f.startswith("callgrind.out"):
                if self.keep:
                    os.makedirs(self.keep, exist_ok=True)
                    shutil.copy(os.path.join(self.work, f), os.path.join(self.keep, f"{name}.{f}"))
                with open(os.path.join(self.work, f)) as dump:
                    for line in dump:
                        if line.startswith("summary:") or line.startswith("totals:"):
                            total += int(line.split()[1])
                            break
        return total

    def _count_syscalls(self, send):
        """All system calls, and on stderr the commonest kinds, per request."""
        out = os.path.join(self.work, "perf-stat.csv")
        events = ["raw_syscalls:sys_enter"] + [f"syscalls:sys_enter_{c}" for c in SYSCALL_KINDS]
        perf = subprocess.Popen(["perf", "stat", "-x,", "-e", ",".join(events),
                                 "-p", str(self.proc.pid), "-o", out],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # attached to every thread
        send()
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)
        counts = {}
        with open(out) as f:
            for line in f:
                fields = line.split(",")
                if len(fields) > 2 and fields[0].isdigit():
                    counts[fields[2].split(":")[1].removeprefix("sys_enter_")] = int(fields[0])
        if "sys_enter" not in counts:
            raise SystemExit(f"perf stat counted nothing: {open(out).read()}")
        self.kinds = {k: v for k, v in counts.items() if k != "sys_enter" and v}
        return counts["sys_enter"]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def request(conn, method, path, auth=None, body=None):
    headers = {}
    if auth:
        headers["Authorization"] = auth
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    payload = resp.read()
    if resp.status >= 300:
        raise SystemExit(f"{method} {path}: HTTP {resp.status}: {payload[:300]!r}")
    return json.loads(payload) if payload else None


def fan_out(addr, items, one):
    """Calls `one(conn, item)` for every item over CONNECTIONS connections."""
    chunks = [items[i::CONNECTIONS] for i in range(CONNECTIONS)]
    errors = []

    def worker(chunk):
        conn = http.client.HTTPConnection(*addr, timeout=600)
        try:
            for item in chunk:
                one(conn, item)
        except BaseException as e:  # reported below
            errors.append(e)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def mint(addr, n, grant):
    out = []
    lock = threading.Lock()

    def one(conn, _):
        pair = request(conn, "POST", TOKEN_PATH, ELASTIC, grant)
        with lock:
            out.append(pair)

    fan_out(addr, list(range(n)), one)
    return out


PASSWORD_GRANT = {"grant_type": "password", "username": "elastic", "password": PASSWORD}


def scenarios(addr, n):
    """(name, prepare) pairs; prepare returns the items and the request of one."""
    def same(method, path, auth, body=None, k=1):
        items = list(range(n * k))
        return items, lambda conn, _: request(conn, method, path, auth, body)

    def bearer():
        token = mint(addr, 1, PASSWORD_GRANT)[0]["access_token"]
        return same("GET", AUTHENTICATE_PATH, "Bearer " + token, k=3)

    def apikey():
        conn = http.client.HTTPConnection(*addr, timeout=600)
        key = request(conn, "POST", "/_security/api_key", ELASTIC, {"name": "bench"})
        conn.close()
        return same("GET", AUTHENTICATE_PATH, "ApiKey " + key["encoded"], k=3)

    def refresh():
        pairs = mint(addr, n, PASSWORD_GRANT)
        return [p["refresh_token"] for p in pairs], lambda conn, rt: request(
            conn, "POST", TOKEN_PATH, ELASTIC, {"grant_type": "refresh_token", "refresh_token": rt})

    def invalidate():
        pairs = mint(addr, n, PASSWORD_GRANT)
        return [p["access_token"] for p in pairs], lambda conn, at: request(
            conn, "DELETE", TOKEN_PATH, ELASTIC, {"token": at})

    return [
        ("authenticate_bearer", bearer),
        ("authenticate_basic", lambda: same("GET", AUTHENTICATE_PATH, ELASTIC, k=3)),
        ("authenticate_apikey", apikey),
        ("create_client_credentials",
         lambda: same("POST", TOKEN_PATH, ELASTIC, {"grant_type": "client_credentials"})),
        ("create_password", lambda: same("POST", TOKEN_PATH, ELASTIC, PASSWORD_GRANT)),
        ("refresh_distinct", refresh),
        ("invalidate_access_token", invalidate),
    ]


def measure(binary, n, what, keep=None):
    work = tempfile.mkdtemp(prefix="tessera-instr-")
    server = Server(binary, work, what)
    try:
        # The first password check (argon2id) and the caches, not counted.
        mint(server.addr, CONNECTIONS, PASSWORD_GRANT)
        figures = {}
        server.keep = keep
        idle = server.count("idle", lambda: time.sleep(2))
        figures["idle_per_second"] = idle / 2
        for name, prepare in scenarios(server.addr, n):
            items, one = prepare()
            warm, rest = items[: max(1, len(items) // 10)], items[max(1, len(items) // 10):]
            fan_out(server.addr, warm, one)
            t0 = time.monotonic()
            total = server.count(name, lambda: fan_out(server.addr, rest, one))
            took = time.monotonic() - t0
            # Subtract what the idle threads would have run meanwhile.
            per = (total - idle / 2 * took) / len(rest)
            figures[name] = round(per) if what == "instructions" else round(per, 1)
            kinds = ""
            if what == "syscalls":
                kinds = " (" + ", ".join(f"{k} {v / len(rest):.1f}" for k, v in server.kinds.items()) + ")"
            print(f"  {name}: {per:,.1f} {what} per request{kinds} ({len(rest)} requests, {took:.1f} s)",
                  file=sys.stderr)
        return figures
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--runs", type=int, default=2, help="runs per binary, alternating")
    ap.add_argument("--n", type=int, default=1000, help="requests per write scenario (3x for reads)")
    ap.add_argument("--json", help="where to write the figures")
    ap.add_argument("--syscalls", action="store_true",
                    help="count system calls (perf stat, server at full speed) instead of instructions")
    ap.add_argument("--keep", metavar="DIR",
                    help="copy each scenario's callgrind dump into DIR (for callgrind_annotate)")
    args = ap.parse_args()
    what = "syscalls" if args.syscalls else "instructions"
    tool = "perf" if args.syscalls else "valgrind"
    if not shutil.which(tool):
        raise SystemExit(f"{tool} is not installed (Debian: apt-get install {'linux-perf' if args.syscalls else tool})")
    results = {b: [] for b in args.binaries}
    for run in range(args.runs):
        order = args.binaries if run % 2 == 0 else list(reversed(args.binaries))
        for b in order:
            print(f"==> run {run + 1}: {b}", file=sys.stderr)
            results[b].append(measure(b, args.n, what, args.keep))
    names = [k for k in results[args.binaries[0]][0] if k != "idle_per_second"]
    first = args.binaries[0]
    header = "| scenario | " + " | ".join(args.binaries) + " |"
    print(header)
    print("|---" * (len(args.binaries) + 1) + "|")
    for name in names:
        base = sum(r[name] for r in results[first]) / len(results[first])
        cells = []
        for b in args.binaries:
            runs = [r[name] for r in results[b]]
            mean = sum(runs) / len(runs)
            spread = " / ".join(f"{x:,}" for x in runs)
            ratio = "" if b == first else f" ({mean / base:.3f}×)"
            cells.append(f"{spread}{ratio}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
