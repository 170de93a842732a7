#!/usr/bin/env python3
"""Helpers of bench/mesh-vs-haproxy: small probes, wrk output parsing and the report.

Subcommands:
  free-ports N                 N free loopback TCP ports, space-separated
  backends                     `shoal service ps --format json` on stdin -> one addr:port a line
  vip                          `shoal service inspect NAME` on stdin -> the service's VIP
  get URL                      exit 0 if URL answers 200 within 1 s
  cpu-ticks PID                utime+stime of the process, in clock ticks
  child-ticks PID              cutime+cstime of the process (its children it has waited for)
  busy SECONDS                 share of all CPUs in use (0..1) over SECONDS, from /proc/stat
  quiet SECONDS SHARE          exit 0 if less than SHARE of the CPUs was in use over SECONDS
  sample PROXY DAEMON HAPROXY SHELL
                               "proxy nonidle total ours all" in clock ticks: the proxy's
                               CPU, the machine's busy and total CPU, ours (daemon and its
                               tasks, HAProxy, the shell's reaped children such as wrk), and
                               the machine's busy CPU with interrupt time
  report --runs DIR --meta F [--write DOC]
                               the markdown report on stdout; with --write, also into DOC
"""

from __future__ import annotations

import json
import re
import socket
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BEGIN = "<!-- mesh-vs-haproxy:begin -->"
END = "<!-- mesh-vs-haproxy:end -->"
KINDS = {"keepalive": "keep-alive", "close": "conn-per-request"}
TARGETS = {"shoal": "shoal mesh", "vip": "shoal VIP", "nat": "shoal mesh, lb-mode nat",
           "natvip": "shoal VIP, lb-mode nat", "haproxy": "HAProxy",
           "direct": "direct (1 backend)"}
# The paths the targets are judged for: the proxy's (the default) and the kernel's NAT.
PATHS = (("shoal", "mesh"), ("vip", "VIP"), ("nat", "mesh (lb-mode nat)"),
         ("natvip", "VIP (lb-mode nat)"))
CPU_RATIO_LIMIT = 0.8  # shoal's CPU per request at most this share of HAProxy's
P99_SLACK = 0.10
RSS_LIMIT_MB = 30.0
OTHER_LOAD_LIMIT = 0.05  # share of all CPUs used by others above which a run is disturbed


# --- probes ----------------------------------------------------------------------------------

def free_ports(n: int) -> None:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


def backends() -> None:
    tasks = json.load(sys.stdin)
    for task in tasks:
        if task.get("status", {}).get("state") != "running":
            continue
        endpoint = task.get("endpoint") or {}
        ports = endpoint.get("ports") or []
        if endpoint.get("addr") and ports:
            print(f"{endpoint['addr']}:{ports[0]['host_port']}")


def vip() -> None:
    """The first `vip` field anywhere in the JSON on stdin (inspect prints a list)."""
    def find(node):
        if isinstance(node, dict):
            if isinstance(node.get("vip"), str):
                return node["vip"]
            node = list(node.values())
        if isinstance(node, list):
            for child in node:
                found = find(child)
                if found:
                    return found
        return None
    found = find(json.load(sys.stdin))
    if found:
        print(found.split("/")[0])


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:
            return 0 if reply.status == 200 else 1
    except OSError:
        return 1


def cpu_ticks(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name, which is in parentheses and may hold spaces.
    fields = stat[stat.rindex(")") + 2:].split()
    # utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
    return int(fields[11]) + int(fields[12])


def machine_ticks() -> tuple[int, int, int]:
    """(total, idle, irq) CPU ticks of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    # user nice system idle iowait irq softirq steal; guest time is already in user.
    return sum(values[:8]), values[3] + values[4], values[5] + values[6]


def busy(seconds: float) -> float:
    total0, idle0, _ = machine_ticks()
    time.sleep(seconds)
    total1, idle1, _ = machine_ticks()
    total = max(total1 - total0, 1)
    return 1.0 - (idle1 - idle0) / total


def irq_time_accounting() -> bool:
    """Whether the running kernel was built with CONFIG_IRQ_TIME_ACCOUNTING (False if unknown)."""
    import gzip
    import os

    candidates = [Path(f"/boot/config-{os.uname().release}"), Path("/proc/config.gz")]
    for path in candidates:
        try:
            raw = path.read_bytes()
        except OSError:
            continue
        text = (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode(errors="replace")
        return "CONFIG_IRQ_TIME_ACCOUNTING=y" in text
    return False


def stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def sample(proxy: int, daemon: int, haproxy: int, shell: int) -> None:
    total, idle, irq = machine_ticks()
    ours = 0
    for pid in (daemon, haproxy):
        f = stat_fields(pid)
        ours += int(f[11]) + int(f[12]) if f else 0
    f = stat_fields(shell)
    ours += int(f[13]) + int(f[14]) if f else 0  # cutime + cstime: reaped children
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            f = stat_fields(int(entry.name))
            if f and int(f[1]) == daemon:  # the daemon's tasks
                ours += int(f[11]) + int(f[12])
    # Where the kernel accounts interrupt time apart (CONFIG_IRQ_TIME_ACCOUNTING), the softirq
    # work of our loopback traffic is in /proc/stat's irq columns but in no process's time;
    # elsewhere it is in both.
    if not irq_time_accounting():
        irq = 0
    proxy_ticks = cpu_ticks(proxy) if proxy else 0
    print(proxy_ticks, total - idle - irq, total, ours, total - idle)


# --- wrk output ------------------------------------------------------------------------------

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"unknown latency {text!r}")
    return float(m.group(1)) * UNITS_MS[m.group(2)]


@dataclass
class Run:
    kind: str
    target: str
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    seconds: float
    socket_errors: dict[str, int]
    non_2xx: int
    cpu_s: float | None
    machine_s: float  # every CPU's busy time (wrk, proxy, backends, kernel, others)
    other_share: float | None  # share of the machine's CPU used by processes not ours

    @property
    def errors(self) -> int:
        return sum(self.socket_errors.values()) + self.non_2xx

    @property
    def cpu_us_per_req(self) -> float | None:
        if self.cpu_s is None or self.requests == 0:
            return None
        return self.cpu_s * 1e6 / self.requests

    @property
    def machine_us_per_req(self) -> float | None:
        if self.requests == 0:
            return None
        return self.machine_s * 1e6 / self.requests

    @property
    def cpu_percent(self) -> float | None:
        if self.cpu_s is None or self.seconds == 0:
            return None
        return self.cpu_s * 100 / self.seconds

    def errors_text(self) -> str:
        if self.errors == 0:
            return "0"
        parts = [f"{k} {v}" for k, v in self.socket_errors.items() if v]
        if self.non_2xx:
            parts.append(f"non-2xx {self.non_2xx}")
        return f"{self.errors} ({', '.join(parts)})"


def parse_wrk(text: str) -> dict:
    def need(pattern: str) -> re.Match:
        m = re.search(pattern, text, re.M)
        if not m:
            raise ValueError(f"wrk output has no match for {pattern!r}:\n{text}")
        return m

    done = need(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)")
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors = dict(zip(errors, map(int, m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "rps": float(need(r"^Requests/sec:\s+([\d.]+)").group(1)),
        "p50_ms": to_ms(need(r"^\s+50%\s+(\S+)").group(1)),
        "p99_ms": to_ms(need(r"^\s+99%\s+(\S+)").group(1)),
        "requests": int(done.group(1)),
        "seconds": to_ms(done.group(2) + done.group(3)) / 1000,
        "socket_errors": errors,
        "non_2xx": int(m.group(1)) if m else 0,
    }


def load_runs(runs_dir: Path, clk_tck: int) -> list[Run]:
    runs = []
    for wrk_file in sorted(runs_dir.glob("*.wrk")):
        kind, target, rnd = wrk_file.stem.split(".")
        before, after = (list(map(int, line.split()))
                         for line in wrk_file.with_suffix(".cpu").read_text().splitlines())
        cpu_s = None if target == "direct" else (after[0] - before[0]) / clk_tck
        nonidle, total, ours, busy_all = (a - b for a, b in zip(after[1:], before[1:]))
        other = max(nonidle - ours, 0) / total if total > 0 else None
        runs.append(Run(kind, target, int(rnd), cpu_s=cpu_s, other_share=other,
                        machine_s=busy_all / clk_tck,
                        **parse_wrk(wrk_file.read_text())))
    return runs


# --- report ----------------------------------------------------------------------------------

def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def read_meta(path: Path) -> dict[str, str]:
    meta = {}
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        meta[key] = value
    return meta


def disturbed(run: Run) -> bool:
    return run.other_share is not None and run.other_share > OTHER_LOAD_LIMIT


def best(runs: list[Run]) -> dict[tuple[str, str], Run]:
    """The better run of each (kind, target): undisturbed by other processes if one is, and
    of those the one with the most requests/s."""
    chosen: dict[tuple[str, str], Run] = {}
    for run in runs:
        key = (run.kind, run.target)
        rank = (not disturbed(run), run.rps)
        if key not in chosen or rank > (not disturbed(chosen[key]), chosen[key].rps):
            chosen[key] = run
    return chosen


def verdicts(chosen: dict[tuple[str, str], Run], idle_mb: float) -> list[str]:
    lines = []
    for kind, label in KINDS.items():
        ha = chosen.get((kind, "haproxy"))
        for target, path in PATHS:
            ours = chosen.get((kind, target))
            if not ours or not ha:
                continue
            if target in ("nat", "natvip"):
                # No process of its own forwards it: judge what the whole machine spends too.
                o_all, h_all = ours.machine_us_per_req, ha.machine_us_per_req
                ok = o_all is not None and h_all is not None and o_all <= h_all
                ratio = f"{o_all / h_all:.2f}×" if o_all is not None and h_all else "n/a"
                lines.append(
                    f"- {'PASS' if ok else 'FAIL'} {label}: {path} machine CPU per request "
                    f"(every process and the kernel) at most HAProxy's ({fmt(o_all, 1)} µs vs "
                    f"{fmt(h_all, 1)} µs, {ratio})"
                )
            o_cpu, h_cpu = ours.cpu_us_per_req, ha.cpu_us_per_req
            ok = o_cpu is not None and h_cpu is not None and o_cpu <= h_cpu * CPU_RATIO_LIMIT
            ratio = f"{o_cpu / h_cpu:.2f}×" if o_cpu is not None and h_cpu else "n/a"
            lines.append(
                f"- {'PASS' if ok else 'FAIL'} {label}: {path} CPU per request at most "
                f"{CPU_RATIO_LIMIT}× HAProxy's ({fmt(o_cpu, 1)} µs vs {fmt(h_cpu, 1)} µs, {ratio})"
            )
            ok = ours.p99_ms <= ha.p99_ms * (1 + P99_SLACK)
            delta = (ours.p99_ms / ha.p99_ms - 1) * 100 if ha.p99_ms else float("nan")
            lines.append(
                f"- {'PASS' if ok else 'FAIL'} {label}: {path} p99 within 10% of HAProxy's "
                f"({ours.p99_ms:.2f} ms vs {ha.p99_ms:.2f} ms, {delta:+.0f}%)"
            )
    ok = idle_mb < RSS_LIMIT_MB
    lines.append(f"- {'PASS' if ok else 'FAIL'} daemon idle RSS < 30 MB ({idle_mb:.1f} MB)")
    return lines


def table(rows: list[Run], with_round: bool) -> list[str]:
    head = ["client", "proxy"] + (["round"] if with_round else []) + [
        "req/s", "p50 ms", "p99 ms", "CPU µs/req", "proxy CPU %", "machine CPU µs/req",
        "errors"] + (["other load %"] if with_round else [])
    numeric = {"round", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "proxy CPU %",
               "machine CPU µs/req", "other load %"}
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join("---:" if h in numeric else "---" for h in head) + "|"]
    for r in rows:
        cells = [KINDS[r.kind], TARGETS[r.target]] + ([str(r.round)] if with_round else []) + [
            fmt(r.rps, 0), fmt(r.p50_ms), fmt(r.p99_ms), fmt(r.cpu_us_per_req, 1),
            fmt(r.cpu_percent, 0), fmt(r.machine_us_per_req, 1), r.errors_text()] + (
            [fmt(None if r.other_share is None else r.other_share * 100, 0)] if with_round else [])
        out.append("| " + " | ".join(cells) + " |")
    return out


def ordered(runs) -> list[Run]:
    kinds, targets = list(KINDS), ["shoal", "vip", "nat", "natvip", "haproxy", "direct"]
    return sorted(runs, key=lambda r: (kinds.index(r.kind), targets.index(r.target), r.round))


def render(runs: list[Run], meta: dict[str, str]) -> tuple[str, list[str]]:
    chosen = best(runs)
    idle_mb = int(meta["idle_rss_kb"]) * 1024 / 1e6
    loaded_mb = int(meta["loaded_rss_kb"]) * 1024 / 1e6
    lines = [
        f"Run on {meta['date']}, shoal `{meta['shoal']}`: wrk -t1 -c{meta['connections']} "
        f"-d{meta['duration']}s per run, in a network namespace of the script's own, each "
        "proxy run twice (orders mesh→VIP→NAT mesh→NAT VIP→HAProxy, then the reverse); kept: "
        "the run with more req/s, preferring runs no other process disturbed. The VIP rows are "
        f"the shoal daemon too, reached at {meta.get('vip', 'the VIP')}:80 through the kernel's "
        f"redirect; the lb-mode nat rows are `webnat` (its VIP {meta.get('natvip', '')}:80), "
        "forwarded by the kernel's NAT with no process in the way: their 'CPU µs/req' is the "
        "daemon's, idle beside them.",
        "",
        *table(ordered(chosen.values()), with_round=False),
        "",
        f"Shoal daemon RSS (VmRSS, 1 MB = 10^6 bytes): idle with `web` (3 replicas) created "
        f"{idle_mb:.1f} MB; after the load {loaded_mb:.1f} MB.",
        "",
        "Targets:",
        "",
        *verdicts(chosen, idle_mb),
        "",
        f"Machine: {meta['nproc']} CPUs ({meta['cpu']}), kernel {meta['kernel']}; "
        f"{meta['haproxy']}; {meta['wrk']}.",
    ]
    busy = float(meta.get("busy_before") or 0)
    if busy > 0.25:
        lines += ["", f"Warning: {busy:.0%} of the CPUs were in use by other processes just "
                  "before the runs; the numbers may be noisy."]
    noisy = [r for r in runs if disturbed(r)]
    if noisy:
        kept = sum(1 for r in chosen.values() if disturbed(r))
        lines += ["", f"Warning: in {len(noisy)} of {len(runs)} runs other processes used more "
                  "than 5% of the machine's CPU (column 'other load %'), "
                  f"{kept} of them in the table above; those numbers may be noisy."]
    lines += ["", "All runs ('other load %': CPU used by processes other than wrk, the proxies "
              "and the backends, as a share of all CPUs):", "",
              *table(ordered(runs), with_round=True)]
    return "\n".join(lines), verdicts(chosen, idle_mb)


INTRO = """# Benchmarks

Side-by-side measurements of shoal's data plane against established proxies. Each section
below is written by the script that produced it; rerun the script to refresh it.

## Routing mesh and VIP vs HAProxy (L4, TCP)

What is measured: one single-node cluster runs `web`, 3 replicas of `shoal whoami` (a small
HTTP server), published through the routing mesh and reachable on its service VIP
(`10.96.0.2:80`: the kernel redirects it to the daemon's VIP listener, which routes by the
original destination); HAProxy 2.6 (`mode tcp`, `balance roundrobin`, `nbthread 1`, no
logging) forwards another loopback port to the same 3 backends. wrk (1 thread, 32
connections) drives each with HTTP keep-alive and with one connection per request
(`Connection: close`); a run straight to one backend is the reference. For each proxy the
CPU time of its own process (utime + stime from `/proc/PID/stat`) over the run is divided by
the requests served: CPU µs per request; for the mesh and the VIP that process is the shoal
daemon. The daemon also runs the (idle) control plane, which makes the comparison
conservative; its tokio runtime may use both cores, HAProxy one thread. Whoami backends are
separate processes and are not counted, nor is the kernel's work (the VIP's nat redirect
included), which lands in whichever process sends. A second service, `webnat` (3 more
replicas, `--lb-mode nat`), is forwarded by the kernel's NAT instead of the daemon: no
process forwards its connections, so beside 'CPU µs/req' (the daemon's, idle) every row
also has 'machine CPU µs/req', the busy time of all CPUs (wrk, the proxy, the backends and
the kernel) per request, which compares the paths whole. Everything (daemon, backends, HAProxy,
wrk) runs in a network namespace the script creates and removes, on its loopback, so the
VIPs and the daemon's nat rules stay off the machine's own networks; the namespace's nat
table makes every connection in it, to any of the three, go through connection tracking.

Machine: 2 cores. wrk, the proxy and the backends share them, so absolute numbers are low;
the comparison between the proxies is what matters. The numbers move by several percent
from run to run, and more when another process (a build next door) takes CPU: the script
waits up to 30 s for an idle machine before each run, measures how much CPU other processes
took during it ('other load %') and flags the runs they disturbed.

Reproduce (as root; installs HAProxy and wrk from Debian if missing, builds shoal, about 3
minutes):

```
bench/mesh-vs-haproxy --write
```

"""


def replace_section(doc: Path, begin: str, end: str, body: str, heading: str) -> None:
    """Puts `body` between the markers `begin` and `end` of `doc`, or appends it under
    `heading` when the markers are not there yet."""
    section = f"{begin}\n{body}\n{end}"
    text = doc.read_text() if doc.exists() else INTRO
    if begin in text and end in text and text.index(begin) < text.index(end):
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + f"\n\n## {heading}\n\n" + section + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def write_doc(doc: Path, body: str) -> None:
    replace_section(doc, BEGIN, END, f"{body}\n\nReproduce: `bench/mesh-vs-haproxy --write` "
                    "(DURATION=seconds per run, default 10).",
                    "Routing mesh and VIP vs HAProxy (L4, TCP)")


def report(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="mesh_vs_haproxy.py report")
    p.add_argument("--runs", type=Path, required=True)
    p.add_argument("--meta", type=Path, required=True)
    p.add_argument("--write", type=Path)
    args = p.parse_args(argv)
    meta = read_meta(args.meta)
    runs = load_runs(args.runs, int(meta["clk_tck"]))
    body, _ = render(runs, meta)
    print(body)
    if args.write:
        write_doc(args.write, body)
        print(f"\n(written to {args.write})", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "free-ports":
        free_ports(int(rest[0]))
    elif cmd == "backends":
        backends()
    elif cmd == "vip":
        vip()
    elif cmd == "get":
        return get(rest[0])
    elif cmd == "cpu-ticks":
        print(cpu_ticks(int(rest[0])))
    elif cmd == "child-ticks":
        f = stat_fields(int(rest[0]))
        print(int(f[13]) + int(f[14]) if f else 0)
    elif cmd == "sample":
        sample(*map(int, rest[:4]))
    elif cmd == "quiet":
        return 0 if busy(float(rest[0])) < float(rest[1]) else 1
    elif cmd == "busy":
        print(f"{busy(float(rest[0])):.3f}")
    elif cmd == "report":
        return report(rest)
    else:
        print(f"unknown subcommand {cmd}\n{__doc__}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
