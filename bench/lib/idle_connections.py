#!/usr/bin/env python3
"""Helpers of bench/idle-connections: the client that holds the connections, and the report.

Subcommands:
  hold --target HOST:PORT --count N --backends P[,P...] --proxy-pid PID --out F
                               reads the proxy's memory, opens N TCP connections to the
                               proxy, waits until the backends (listening on ports P) hold
                               N connections, reads the memory again, sends one byte on every
                               connection and reads its echo, closes them all and reads the
                               memory once more; writes the readings as JSON to F. Run it in
                               the namespace, with a file limit above N.
  summary F                    one line on the readings in F
  report --results DIR --meta F [--write DOC]
                               the markdown report on stdout; with --write, also into DOC
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mesh_vs_haproxy import fmt, read_meta, replace_section  # noqa: E402  (same directory)

BEGIN = "<!-- idle-connections:begin -->"
END = "<!-- idle-connections:end -->"
PROXIES = {"shoal": "shoal mesh", "nat": "shoal mesh, lb-mode nat", "haproxy": "HAProxy"}
IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h
PER_SOURCE = 20_000  # connections per client source address (the ephemeral range is ~28k)


# --- readings --------------------------------------------------------------------------------

def kv_kb(path: str, keys: tuple[str, ...]) -> dict[str, int]:
    """`Key:   N kB` lines of a /proc file, in kB."""
    out = {}
    for line in Path(path).read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in keys:
            out[key] = int(rest.split()[0])
    return out


def sockstat() -> dict[str, int]:
    """TCP sockets in use in this namespace and TCP buffer memory (pages, all namespaces)."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            words = line.split()[1:]
            return {k: int(v) for k, v in zip(words[::2], words[1::2])}
    return {}


def reading(pid: int) -> dict:
    status = kv_kb(f"/proc/{pid}/status", ("VmRSS", "RssAnon", "RssFile", "Threads"))
    rollup = kv_kb(f"/proc/{pid}/smaps_rollup", ("Pss",))
    meminfo = kv_kb("/proc/meminfo", ("Slab", "SUnreclaim"))
    return {
        "rss_kb": status["VmRSS"],
        "rss_anon_kb": status.get("RssAnon"),
        "pss_kb": rollup.get("Pss"),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "sock_tcp_mem_pages": sockstat().get("mem"),
        "sock_tcp_inuse": sockstat().get("inuse"),
        "slab_unreclaimable_kb": meminfo.get("SUnreclaim"),
        "time": time.time(),
    }


def established_on(ports: set[int]) -> int:
    """Established TCP connections in this namespace whose local port is one of `ports`."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) in ports:
                n += 1
    return n


def wait_for(what: str, check, deadline_s: float) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > deadline_s:
            raise SystemExit(f"error: {what} not reached in {deadline_s:.0f} s")
        time.sleep(0.2)
    return time.monotonic() - start


# --- the client ------------------------------------------------------------------------------

def open_connections(host: str, port: int, count: int) -> list[socket.socket]:
    conns = []
    for i in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        source = i // PER_SOURCE
        if source:
            # 127.0.0.2, .3, ...: a fresh ephemeral port range per source address.
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((f"127.0.0.{1 + source}", 0))
        s.connect((host, port))
        conns.append(s)
    return conns


def echo_all(conns: list[socket.socket], timeout_s: float) -> int:
    """Sends one byte on every connection and counts those whose byte came back."""
    sel = selectors.DefaultSelector()
    for s in conns:
        s.sendall(b"x")
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    ok, pending, deadline = 0, len(conns), time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            try:
                data = s.recv(16)
            except BlockingIOError:
                continue
            sel.unregister(s)
            pending -= 1
            ok += data == b"x"
    sel.close()
    return ok


def hold(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="idle_connections.py hold")
    p.add_argument("--target", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--backends", required=True)
    p.add_argument("--proxy-pid", type=int, required=True)
    p.add_argument("--settle", type=float, default=2.0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    host, port = args.target.rsplit(":", 1)
    backends = {int(x) for x in args.backends.split(",")}
    pid, n = args.proxy_pid, args.count

    result = {"count": n}
    if established_on(backends):
        raise SystemExit("error: the backends already hold connections")
    result["before"] = reading(pid)
    start = time.monotonic()
    conns = open_connections(host, int(port), n)
    result["open_s"] = time.monotonic() - start
    result["backends_wait_s"] = wait_for(f"{n} connections at the backends",
                                         lambda: established_on(backends) >= n, 120)
    result["at_backends"] = established_on(backends)
    time.sleep(args.settle)
    result["open"] = reading(pid)
    result["echoed"] = echo_all(conns, 60)
    time.sleep(args.settle)
    result["after_echo"] = reading(pid)
    for s in conns:
        s.close()
    conns.clear()
    result["close_wait_s"] = wait_for("the backends' connections to close",
                                      lambda: established_on(backends) == 0, 60)
    time.sleep(args.settle)
    result["closed"] = reading(pid)
    args.out.write_text(json.dumps(result, indent=1))
    return 0


# --- report ----------------------------------------------------------------------------------

def per_conn(result: dict, key: str, at: str = "open", scale: int = 1024) -> float | None:
    a, b = result["before"].get(key), result[at].get(key)
    if a is None or b is None:
        return None
    return (b - a) * scale / result["count"]


def row(proxy: str, r: dict) -> list[str]:
    mb = lambda kb: f"{kb * 1024 / 1e6:.1f}"  # noqa: E731
    return [
        PROXIES[proxy], f"{r['count']:,}", f"{r['at_backends']:,}", f"{r['echoed']:,}",
        f"{mb(r['before']['rss_kb'])} → {mb(r['open']['rss_kb'])}",
        fmt(per_conn(r, "rss_kb"), 0),
        fmt(per_conn(r, "pss_kb"), 0),
        fmt(per_conn(r, "rss_kb", "after_echo"), 0),
        mb(r["closed"]["rss_kb"]),
        fmt(per_conn(r, "fds", scale=1), 1),
        fmt(per_conn(r, "sock_tcp_mem_pages", scale=4096), 0),
        fmt(per_conn(r, "slab_unreclaimable_kb"), 0),
        f"{r['open_s']:.1f}",
    ]


def render(results: dict[str, dict], meta: dict[str, str]) -> str:
    head = ["proxy", "connections", "held by the backends", "echoed", "RSS MB idle → open",
            "RSS bytes/conn", "PSS bytes/conn", "RSS bytes/conn after 1 byte each way",
            "RSS MB after closing", "fds/conn", "TCP buffer bytes/conn (sockstat)",
            "kernel slab bytes/conn (whole machine)", "open s"]
    count, asked = int(meta["count"]), int(meta["count_asked"])
    nofile, per_port = int(meta["nofile"]), int(meta["mesh_per_port"])
    lines = [
        f"Run on {meta['date']}, shoal `{meta['shoal']}`: {count:,} connections per proxy "
        f"({asked:,} through lb-mode nat, which no file limit of the daemon caps), "
        f"each proxy measured once on a fresh process (order: {meta['order']}), in a network "
        f"namespace of the script's own; every process with a file limit of {nofile:,}.",
        "",
        *([f"Asked for {asked:,} connections; measured at {count:,}: with {nofile:,} file "
           "descriptors" + (" (the hard limit, which this machine does not let the benchmark "
                            "raise)" if nofile < 1_048_576 else "") + " "
           f"the mesh admits at most {per_port:,} connections on one port (4 descriptors per "
           "connection, half the mesh's budget per port: docs/mesh.md).", ""]
          if count < asked else []),
        "| " + " | ".join(head) + " |",
        "|---|" + "|".join("---:" for _ in head[1:]) + "|",
    ]
    for proxy in PROXIES:
        if proxy in results:
            lines.append("| " + " | ".join(row(proxy, results[proxy])) + " |")
    lines += ["", "Targets:", ""]
    ours, ref = results.get("shoal"), results.get("haproxy")
    ok = ours is not None and count >= asked and ours["at_backends"] >= asked
    lines.append(f"- {'PASS' if ok else 'FAIL'} {asked:,} idle connections held through the mesh"
                 + ("" if count >= asked else
                    f" (its cap here was {per_port:,} on one port, with a file limit of "
                    f"{nofile:,}; measured at {count:,})"))
    if ours and ref:
        complete = all(r["at_backends"] >= r["count"] and r["echoed"] == r["count"]
                       for r in (ours, ref))
        lines.append(f"- {'PASS' if complete else 'FAIL'} every connection established end to "
                     "end through both proxies (held by the backends, one byte echoed on each)")
        o, h = per_conn(ours, "rss_kb"), per_conn(ref, "rss_kb")
        ok = o < h
        lines.append(f"- {'PASS' if ok else 'FAIL'} mesh memory per idle connection (RSS) lower "
                     f"than HAProxy's, at {count:,} connections ({o:,.0f} bytes vs {h:,.0f} "
                     f"bytes, {o / h:.2f}×)")
    else:
        lines.append("- FAIL a proxy has no result")
    nat = results.get("nat")
    if nat and ref:
        held = nat["at_backends"] >= asked and nat["echoed"] == nat["count"] >= asked
        lines.append(f"- {'PASS' if held else 'FAIL'} {asked:,} idle connections held through "
                     f"the mesh with lb-mode nat, each echoing one byte ({nat['at_backends']:,} "
                     "held by the backends)")
        # No process holds them: what they cost is the kernel's (connection tracking, sockets).
        total = lambda r: (per_conn(r, "rss_kb") or 0) + (per_conn(r, "slab_unreclaimable_kb") or 0)  # noqa: E731
        o, h = total(nat), total(ref)
        lines.append(f"- {'PASS' if o < h else 'FAIL'} lb-mode nat memory per idle connection "
                     f"(daemon RSS + the whole machine's kernel slab) lower than HAProxy's (RSS "
                     f"+ slab), at {nat['count']:,} against {ref['count']:,} connections "
                     f"({o:,.0f} bytes vs {h:,.0f} bytes, {o / h:.2f}×)")
    lines += [
        "",
        f"Machine: {meta['nproc']} CPUs ({meta['cpu']}), kernel {meta['kernel']}; "
        f"{meta['haproxy']}.",
    ]
    return "\n".join(lines)


def write_doc(doc: Path, body: str) -> None:
    replace_section(doc, BEGIN, END, f"{body}\n\nReproduce: `bench/idle-connections --write` (COUNT=connections, default 10000).",
                    "Idle connections: mesh vs HAProxy")


def report(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="idle_connections.py report")
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--meta", type=Path, required=True)
    p.add_argument("--write", type=Path)
    args = p.parse_args(argv)
    meta = read_meta(args.meta)
    results = {f.stem: json.loads(f.read_text()) for f in sorted(args.results.glob("*.json"))}
    body = render(results, meta)
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
    if cmd == "hold":
        return hold(rest)
    if cmd == "summary":
        r = json.loads(Path(rest[0]).read_text())
        print(f"RSS {r['before']['rss_kb']:,} kB -> {r['open']['rss_kb']:,} kB with "
              f"{r['count']:,} connections, {r['at_backends']:,} at the backends, "
              f"{r['echoed']:,} echoed; opened in {r['open_s']:.1f} s")
        return 0
    if cmd == "report":
        return report(rest)
    print(f"unknown subcommand {cmd}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
