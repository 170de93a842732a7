#!/usr/bin/env python3
"""Helpers of bench/dns-vs-dnsmasq: the names to serve, an answer check, dnsperf parsing
and the report.

Subcommands:
  names SHOAL SOCKET DOMAIN SERVICE... --hosts F --queries F
                               reads each service's VIP or tasks from the cluster (the CLI)
                               and writes the hosts file dnsmasq serves (the same names and
                               addresses shoal answers) and dnsperf's query file
  check QUERIES ADDR1 ADDR2    asks both servers every query of the file once (UDP); exit 0
                               if they give the same rcode and the same set of addresses,
                               and not an empty one; prints the differences otherwise
  report --runs DIR --meta F [--write DOC]
                               the markdown report on stdout; with --write, also into DOC
"""

from __future__ import annotations

import json
import random
import re
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mesh_vs_haproxy import fmt, read_meta, replace_section  # noqa: E402  (same directory)

BEGIN = "<!-- dns-vs-dnsmasq:begin -->"
END = "<!-- dns-vs-dnsmasq:end -->"
SERVERS = {"shoal": "shoal DNS", "dnsmasq": "dnsmasq"}
OTHER_LOAD_LIMIT = 0.05  # share of all CPUs used by others above which a run is disturbed


# --- the names -------------------------------------------------------------------------------

def cli_json(shoal: str, sock: str, *args: str):
    out = subprocess.run([shoal, "-H", sock, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def find_key(node, key: str):
    """The first string value of `key` anywhere in `node`."""
    if isinstance(node, dict):
        if isinstance(node.get(key), str):
            return node[key]
        node = list(node.values())
    if isinstance(node, list):
        for child in node:
            found = find_key(child, key)
            if found:
                return found
    return None


def names(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="dns_vs_dnsmasq.py names")
    p.add_argument("shoal")
    p.add_argument("socket")
    p.add_argument("domain")
    p.add_argument("services", nargs="+")
    p.add_argument("--hosts", type=Path, required=True)
    p.add_argument("--queries", type=Path, required=True)
    args = p.parse_args(argv)
    hosts, queries = [], []
    for svc in args.services:
        info = cli_json(args.shoal, args.socket, "service", "inspect", svc)
        mode = find_key(info, "endpoint_mode") or "vip"
        tasks = cli_json(args.shoal, args.socket, "service", "ps", svc, "--format", "json")
        task_addrs = sorted({t["endpoint"]["addr"] for t in tasks
                             if t.get("status", {}).get("state") == "running"
                             and (t.get("endpoint") or {}).get("addr")})
        if not task_addrs:
            print(f"error: service {svc} has no running task with an address", file=sys.stderr)
            return 1
        vip = find_key(info, "vip")
        name_addrs = [vip.split("/")[0]] if mode == "vip" and vip else task_addrs
        for name, addrs in ((svc, name_addrs), (f"tasks.{svc}", task_addrs)):
            for addr in addrs:
                hosts.append(f"{addr} {name} {name}.{args.domain}")
            queries += [f"{name} A", f"{name}.{args.domain} A"]
    args.hosts.write_text("\n".join(hosts) + "\n")
    args.queries.write_text("\n".join(queries) + "\n")
    return 0


# --- a minimal DNS client for the check ------------------------------------------------------

def encode_query(qid: int, name: str) -> bytes:
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # RD, one question
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    return header + qname + struct.pack("!HH", 1, 1)  # A, IN


def skip_name(msg: bytes, i: int) -> int:
    while True:
        n = msg[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += 1 + n


def decode_a(msg: bytes) -> tuple[int, list[str]]:
    """(rcode, the A records' addresses) of a reply."""
    _, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    i = 12
    for _ in range(qd):
        i = skip_name(msg, i) + 4
    addrs = []
    for _ in range(an):
        i = skip_name(msg, i)
        rtype, _, _, rdlen = struct.unpack("!HHIH", msg[i:i + 10])
        i += 10
        if rtype == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(msg[i:i + 4]))
        i += rdlen
    return flags & 0xF, addrs


def ask(server: str, name: str) -> tuple[int, list[str]]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        qid = random.randrange(65536)
        s.sendto(encode_query(qid, name), (server, 53))
        while True:
            msg, _ = s.recvfrom(4096)
            if struct.unpack("!H", msg[:2])[0] == qid:
                return decode_a(msg)


def srv_count(server: str, name: str) -> int:
    """How many SRV records `server` answers for `name` (-1 on no answer)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        qid = random.randrange(65536)
        # SRV, IN, with an EDNS record asking for replies of up to 4096 bytes, so that a dozen
        # SRV records are not cut short at 512 bytes.
        query = bytearray(encode_query(qid, name)[:-4] + struct.pack("!HH", 33, 1))
        query[10:12] = struct.pack("!H", 1)
        query += b"\0" + struct.pack("!HHIH", 41, 4096, 0, 0)
        try:
            s.sendto(query, (server, 53))
            while True:
                msg, _ = s.recvfrom(4096)
                if struct.unpack("!H", msg[:2])[0] == qid:
                    if struct.unpack("!H", msg[2:4])[0] & 0x0200:
                        return -1  # truncated: the count is not the whole answer
                    return struct.unpack("!H", msg[6:8])[0]
        except OSError:
            return -1


def propagation(argv: list[str]) -> int:
    """Scales SERVICE up one task at a time to STEPS+1 tasks and back down to 1; for each
    change, the time from the endpoint watch showing the new ready set to the DNS server
    answering with it (SRV records of tasks.SERVICE, one per ready task). Writes the delays
    (seconds, one per line: 'up D' or 'down D') to OUT."""
    import time

    shoal, sock, server, service, steps, out = argv
    steps_n = int(steps)
    name = f"_80._tcp.tasks.{service}"
    lines = []
    plan = [(k, "up") for k in range(2, steps_n + 2)] + \
        [(k, "down") for k in range(steps_n, 0, -1)]
    for want, way in plan:
        watch = subprocess.Popen([shoal, "-H", sock, "service", "endpoints", service, "--watch"],
                                 stdout=subprocess.PIPE, text=True)
        assert watch.stdout is not None
        watch.stdout.readline()  # the set as it is now
        scale = subprocess.Popen([shoal, "-H", sock, "service", "scale", f"{service}={want}",
                                  "--detach"], stdout=subprocess.DEVNULL)
        t0 = None
        for line in watch.stdout:
            v = json.loads(line)
            ready = sum(1 for e in v.get("endpoints", []) if e.get("state") == "ready")
            if ready == want:
                t0 = time.monotonic()
                break
        watch.kill()
        watch.wait()
        scale.wait()
        if t0 is None:
            print(f"error: the watch never showed {want} ready tasks", file=sys.stderr)
            return 1
        deadline = t0 + 10
        while (seen := srv_count(server, name)) != want:
            if time.monotonic() > deadline:
                print(f"error: DNS still answered {seen} SRV records for {name} 10 s after "
                      f"the watch showed {want} ready tasks", file=sys.stderr)
                return 1
            time.sleep(0.002)
        lines.append(f"{way} {time.monotonic() - t0:.4f}")
    Path(out).write_text("\n".join(lines) + "\n")
    return 0


def propagation_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    delays = [(w, float(d)) for w, d in (ln.split() for ln in path.read_text().split("\n") if ln)]
    if not delays:
        return []
    values = sorted(d for _, d in delays)
    worst = values[-1]
    ups = sum(1 for w, _ in delays if w == "up")
    return [
        f"- {'PASS' if worst <= 1.0 else 'FAIL'} answers follow a task becoming ready or "
        f"leaving within 1 s (from the endpoint watch showing the change to the DNS answer "
        f"showing it, SRV records of `tasks.<service>`, {ups} scale-ups and "
        f"{len(delays) - ups} scale-downs: p50 {percentile(values, 0.5) * 1000:.0f} ms, "
        f"worst {worst * 1000:.0f} ms)",
    ]


def check(queries: Path, a: str, b: str) -> int:
    bad = 0
    lines = [line.split() for line in queries.read_text().splitlines() if line.strip()]
    for name, _ in lines:
        ra, rb = ask(a, name), ask(b, name)
        if (ra[0], sorted(ra[1])) != (rb[0], sorted(rb[1])) or ra[0] != 0 or not ra[1]:
            bad += 1
            print(f"  {name}: {a} rcode {ra[0]} {sorted(ra[1])}, {b} rcode {rb[0]} "
                  f"{sorted(rb[1])}", file=sys.stderr)
    print(f"{len(lines) - bad} of {len(lines)} names answered alike", file=sys.stderr)
    return 1 if bad else 0


# --- dnsperf output --------------------------------------------------------------------------

@dataclass
class Run:
    server: str
    round: int
    qps: float
    sent: int
    completed: int
    lost: int
    rcodes: str
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_s: float
    client_cpu_s: float  # dnsperf's (and the script's probes', a few ms)
    other_share: float | None

    @property
    def cpu_us_per_query(self) -> float | None:
        return self.cpu_s * 1e6 / self.completed if self.completed else None

    @property
    def cpu_percent(self) -> float:
        return self.cpu_s * 100 / self.seconds if self.seconds else 0.0

    @property
    def client_cpu_percent(self) -> float:
        return self.client_cpu_s * 100 / self.seconds if self.seconds else 0.0


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def parse_dnsperf(text: str) -> dict:
    def need(pattern: str) -> re.Match:
        m = re.search(pattern, text, re.M)
        if not m:
            raise ValueError(f"dnsperf output has no match for {pattern!r}:\n{text[-2000:]}")
        return m

    # -v: one line per reply, "> RCODE NAME TYPE SECONDS".
    latencies = sorted(float(m.group(1)) * 1000
                       for m in re.finditer(r"^> \S+ \S+ \S+ ([\d.]+)$", text, re.M))
    return {
        "qps": float(need(r"^\s*Queries per second:\s+([\d.]+)").group(1)),
        "sent": int(need(r"^\s*Queries sent:\s+(\d+)").group(1)),
        "completed": int(need(r"^\s*Queries completed:\s+(\d+)").group(1)),
        "lost": int(need(r"^\s*Queries lost:\s+(\d+)").group(1)),
        "rcodes": need(r"^\s*Response codes:\s+(.*)$").group(1).strip(),
        "seconds": float(need(r"^\s*Run time \(s\):\s+([\d.]+)").group(1)),
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": latencies[-1] if latencies else float("nan"),
    }


def load_runs(runs_dir: Path, clk_tck: int) -> list[Run]:
    runs = []
    for out in sorted(runs_dir.glob("*.dnsperf")):
        server, rnd = out.stem.split(".")
        before, after = (list(map(int, line.split()))
                         for line in out.with_suffix(".cpu").read_text().splitlines())
        cpu_s = (after[0] - before[0]) / clk_tck
        c_before, c_after = map(int, out.with_suffix(".client").read_text().split())
        client_cpu_s = (c_after - c_before) / clk_tck
        nonidle, total, ours = (a - b for a, b in zip(after[1:], before[1:]))
        other = max(nonidle - ours, 0) / total if total > 0 else None
        runs.append(Run(server, int(rnd), cpu_s=cpu_s, client_cpu_s=client_cpu_s,
                        other_share=other,
                        **parse_dnsperf(out.read_text())))
    return runs


# --- report ----------------------------------------------------------------------------------

def disturbed(run: Run) -> bool:
    return run.other_share is not None and run.other_share > OTHER_LOAD_LIMIT


def best(runs: list[Run]) -> dict[str, Run]:
    """Each server's best run: undisturbed by other processes if one is, then most queries/s."""
    chosen: dict[str, Run] = {}
    for run in runs:
        rank = (not disturbed(run), run.qps)
        if run.server not in chosen or rank > (not disturbed(chosen[run.server]),
                                               chosen[run.server].qps):
            chosen[run.server] = run
    return chosen


def table(rows: list[Run], with_round: bool, nproc: int) -> list[str]:
    head = ["server"] + (["round"] if with_round else []) + [
        "queries/s", "p50 ms", "p99 ms", "max ms", "lost", "CPU µs/query",
        "server CPU % of one core", "share of all CPUs %", "dnsperf CPU % of one core"] + (
        ["other load %"] if with_round else [])
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join("---" if h == "server" else "---:" for h in head) + "|"]
    for r in rows:
        cells = [SERVERS[r.server]] + ([str(r.round)] if with_round else []) + [
            fmt(r.qps, 0), fmt(r.p50_ms, 3), fmt(r.p99_ms, 3), fmt(r.max_ms, 2),
            f"{r.lost:,}", fmt(r.cpu_us_per_query, 1), fmt(r.cpu_percent, 0),
            fmt(r.cpu_percent / nproc, 0), fmt(r.client_cpu_percent, 0)] + (
            [fmt(None if r.other_share is None else r.other_share * 100, 0)]
            if with_round else [])
        out.append("| " + " | ".join(cells) + " |")
    return out


def verdicts(chosen: dict[str, Run]) -> list[str]:
    ours, ref = chosen.get("shoal"), chosen.get("dnsmasq")
    if not ours or not ref:
        return ["- FAIL a server has no run"]
    lines = []
    ok = ours.qps >= ref.qps
    lines.append(f"- {'PASS' if ok else 'FAIL'} shoal DNS queries/s at least dnsmasq's "
                 f"({ours.qps:,.0f} vs {ref.qps:,.0f}, {ours.qps / ref.qps:.2f}×)")
    ok = ours.p99_ms <= ref.p99_ms
    lines.append(f"- {'PASS' if ok else 'FAIL'} shoal DNS p99 at most dnsmasq's "
                 f"({ours.p99_ms:.3f} ms vs {ref.p99_ms:.3f} ms, {ours.p99_ms / ref.p99_ms:.2f}×)")
    lost = ours.lost + ref.lost
    lines.append(f"- {'PASS' if lost == 0 else 'FAIL'} no query lost in the kept runs "
                 f"(shoal {ours.lost:,}, dnsmasq {ref.lost:,})")
    return lines


def render(runs: list[Run], meta: dict[str, str]) -> str:
    chosen = best(runs)
    nproc = int(meta["nproc"])
    order = list(SERVERS)
    kept = sorted(chosen.values(), key=lambda r: order.index(r.server))
    lines = [
        f"Run on {meta['date']}, shoal `{meta['shoal']}`: {meta['services']} services "
        f"({meta['vip_services']} with a VIP and 1 task, {meta['dnsrr_services']} dnsrr with "
        f"{meta['dnsrr_replicas']} tasks each), {meta['queries']} names in the query file "
        f"(all answered alike by both servers: {meta['check']}); `dnsperf -c {meta['clients']} "
        f"-q {meta['outstanding']} -T 1 -l {meta['duration']} -v` per run, "
        f"{meta['rounds']} rounds in alternating order; kept: each server's run with the most "
        "queries/s, preferring runs no other process disturbed.",
        "",
        *table(kept, with_round=False, nproc=nproc),
        "",
        "Targets:",
        "",
        *verdicts(chosen),
        *propagation_lines(Path(meta.get("propagation", "/nonexistent"))),
        "",
        f"Machine: {nproc} CPUs ({meta['cpu']}), kernel {meta['kernel']}; {meta['dnsmasq']}; "
        f"{meta['dnsperf']}. dnsperf, the servers and the daemon's control plane share the "
        "CPUs.",
    ]
    busy = float(meta.get("busy_before") or 0)
    if busy > 0.25:
        lines += ["", f"Warning: {busy:.0%} of the CPUs were in use by other processes just "
                  "before the runs; the numbers may be noisy."]
    noisy = [r for r in runs if disturbed(r)]
    if noisy:
        n_kept = sum(1 for r in kept if disturbed(r))
        lines += ["", f"Warning: in {len(noisy)} of {len(runs)} runs other processes used more "
                  "than 5% of the machine's CPU (column 'other load %'), "
                  f"{n_kept} of them in the table above; those numbers may be noisy."]
    runs_sorted = sorted(runs, key=lambda r: (r.round, order.index(r.server)))
    lines += ["", "All runs ('other load %': CPU used by processes other than dnsperf, the "
              "servers and the daemon's tasks, as a share of all CPUs):", "",
              *table(runs_sorted, with_round=True, nproc=nproc)]
    return "\n".join(lines)


def write_doc(doc: Path, body: str) -> None:
    replace_section(doc, BEGIN, END, f"{body}\n\nReproduce: `bench/dns-vs-dnsmasq --write` (DURATION=seconds per run, default 10; ROUNDS, SERVICES, OUTSTANDING, PROPAGATION_STEPS to vary).",
                    "Embedded DNS vs dnsmasq")


def report(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="dns_vs_dnsmasq.py report")
    p.add_argument("--runs", type=Path, required=True)
    p.add_argument("--meta", type=Path, required=True)
    p.add_argument("--write", type=Path)
    args = p.parse_args(argv)
    meta = read_meta(args.meta)
    body = render(load_runs(args.runs, int(meta["clk_tck"])), meta)
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
    if cmd == "names":
        return names(rest)
    if cmd == "check":
        return check(Path(rest[0]), rest[1], rest[2])
    if cmd == "report":
        return report(rest)
    if cmd == "propagation":
        return propagation(rest)
    print(f"unknown subcommand {cmd}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
