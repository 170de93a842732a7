"""Masks what changes between runs in docker CLI output and Engine API JSON.

The goldens beside this file were masked with it, and a comparison masks the output of the
system under test with it too, so the two differ only where the shapes differ. Masking is a
pure function of its input and of a context (hostname, engine version, known IDs): the same
input and context always give the same output.

Text (stdout and stderr of a command), in this order:
  SWMTKN-1-...-...              join token                          -> <TOKEN>
  -----BEGIN CERTIFICATE-----...-----END CERTIFICATE----- (the swarm's root CA, real
                                newlines or JSON's \n)              -> <CERT>
  the issuer's public key (CertIssuerPublicKey, "Issuer Public Key:") -> <KEY>
  [0-9a-f]{64}                  digest or container ID              -> <ID>   (sha256:<ID>)
  2026-12-01T03:58:14.123Z      RFC 3339 time (any precision/zone)  -> <TIME>
  2026-12-01 03:58:14 +0000 UTC Go's time.String (--pretty)         -> <TIME>
  Tue, 01 Dec 2026 03:58:14 GMT HTTP date (the Date header)          -> <TIME>
  "2 seconds ago", "About a minute ago", "less than a second ago"     -> <AGO>
  "Index": 75                   Version.Index in the CLI's JSON     -> "Index": <INDEX>
  [a-z0-9]{25}                  swarm object ID                     -> <ID>
  a known ID or its first 12 characters (context)                   -> <ID>
  [a-z0-9]{12} holding a digit  short (truncated) swarm object ID   -> <ID>
  XXXX:XXXX:...:XXXX            the engine's own ID (12 groups)     -> <ID>
  the engine version (context), and the value after "Engine Version:" -> <ENGINE>
  the hostname (context), as a whole word                           -> <HOST>
Words are only masked whole: an ID is never cut out of a longer run of letters and digits,
and a 12-character word with no digit ("availability") is left alone unless it is a known ID.

Tables (stdout whose first line is an upper-case header with columns two or more spaces
apart, as docker prints them): each row is cut into cells at the header's column starts,
each cell is masked as text (a cell under ENGINE VERSION becomes <ENGINE>), and the table is
laid out again the way docker's tabwriter does (a column is as wide as its widest cell plus
3, at least 10; the last column is not padded; no trailing spaces). So the headers, the
columns and their order survive, while the widths no longer depend on the masked values.

Further steps a golden asks for by name ("normalize:" in its header), after masking:
  sort-lines  sorts the lines, for output whose order is not fixed (the interleaved logs of
              several tasks, the objects a stack creates or removes);
  progress    for the progress `service create|update|scale|rollback` print when stdout is
              not a terminal (a line per refresh, 5 a second, so repeats depend on timing):
              keeps only the first of equal lines, drops "overall progress: k out of n
              tasks" lines with k neither 0 nor n (how many tasks were up at a refresh),
              and drops "rollback: manually requested rollback" and "rollback: rollback
              completed" (UpdateStatus.Message, shown only if a refresh happens to see it).

JSON (an Engine API body): object keys are sorted, and
  every string value is masked as text (above);
  Version.Index (Meta of every object)                               -> "<INDEX>"
  CertIssuerPublicKey                                                -> "<KEY>"
  engine build strings: Version (a string), ServerVersion, EngineVersion, GitCommit,
    GoVersion, KernelVersion, BuildTime, Commit (of runc/containerd/init) -> "<ENGINE>"
  counters of the whole engine in /info (Containers*, Images, NGoroutines, NFd,
    NEventsListener) and a task's container PID                     -> "<N>"
  addresses allocated from the overlay's pool: VirtualIPs[].Addr and
    NetworksAttachments[].Addresses[]                                -> "<ADDR>"
    (node and manager addresses are kept: the advertise address is fixed)
  a top-level array of objects (a list route's answer, in ID order) is sorted by the masked
    serialization of its elements; nested arrays keep their order.
Masked values become strings even where the API sends a number; null, absent fields, empty
arrays and empty objects are never changed.

Command line:
  python3 mask.py text [--sort-lines] [--progress] [--host H] [--engine V] [--ids FILE]
  python3 mask.py json [--host H] [--engine V] [--ids FILE] < in > out
--host defaults to this machine's hostname; --ids names a file of known IDs, one a line.
"""

import argparse
import json
import re
import socket
import sys

TOKEN = re.compile(r"SWMTKN-1-[0-9a-z]+-[0-9a-z]+")
HEX64 = re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{64}(?![0-9A-Za-z])")
RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})"
)
HTTP_DATE = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT")
GO_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)? [+-]\d{4}(?: [A-Za-z]{1,5})?"
    r"(?: m=[+-]\d+\.\d+)?"
)
AGO = re.compile(
    r"(?:Less than a second|About an? (?:minute|hour)|An? (?:minute|hour)"
    r"|\d+ (?:second|minute|hour|day|week|month|year)s?) ago",
    re.IGNORECASE,
)
PEM = re.compile(r"-----BEGIN ([A-Z ]+)-----(?:\\n|\n|[A-Za-z0-9+/=])*?-----END \1-----")
ISSUER_KEY = re.compile(r'("CertIssuerPublicKey": "|Issuer Public Key:\s+)[A-Za-z0-9+/=]+')
INDEX = re.compile(r'("Index": )\d+')
PROGRESS = re.compile(r"^overall progress: (?:rolling back update: )?(\d+) out of (\d+) tasks$")
ID25 = re.compile(r"(?<![0-9A-Za-z])[a-z0-9]{25}(?![0-9A-Za-z])")
ID12 = re.compile(r"(?<![0-9A-Za-z])(?=[a-z]*[0-9])[a-z0-9]{12}(?![0-9A-Za-z])")
ENGINE_ID = re.compile(r"(?<![0-9A-Z])[0-9A-Z]{4}(?::[0-9A-Z]{4}){11}(?![0-9A-Z])")
ENGINE_LINE = re.compile(r"(Engine Version:\s+)\S+")
HEADER = re.compile(r"^[A-Z][A-Z0-9 ]*[A-Z0-9] {2,}[A-Z][A-Z0-9 ]*$")

ENGINE_KEYS = {
    "ServerVersion",
    "EngineVersion",
    "GitCommit",
    "GoVersion",
    "KernelVersion",
    "BuildTime",
    "Commit",
}
COUNT_KEYS = {
    "Containers",
    "ContainersRunning",
    "ContainersPaused",
    "ContainersStopped",
    "Images",
    "NGoroutines",
    "NFd",
    "NEventsListener",
    "PID",
}


class Masker:
    """The masks of one context: the hostname, the engine version and the IDs known."""

    def __init__(self, host=None, engine=None, ids=()):
        self.host = host if host is not None else socket.gethostname()
        self.engine = engine or None
        known = set()
        for i in ids:
            i = i.strip()
            if len(i) >= 12:
                known.add(i)
                known.add(i[:12])
        # Longest first, so an ID is masked whole before its prefix could be.
        self.known = (
            re.compile(
                r"(?<![0-9A-Za-z])(?:"
                + "|".join(re.escape(i) for i in sorted(known, key=lambda s: (-len(s), s)))
                + r")(?![0-9A-Za-z])"
            )
            if known
            else None
        )
        self.host_re = (
            re.compile(r"(?<![0-9A-Za-z_-])" + re.escape(self.host) + r"(?![0-9A-Za-z_-])")
            if self.host
            else None
        )

    def line(self, s):
        """Mask one piece of text (no table handling)."""
        s = TOKEN.sub("<TOKEN>", s)
        s = PEM.sub("<CERT>", s)
        s = ISSUER_KEY.sub(r"\1<KEY>", s)
        s = HEX64.sub("<ID>", s)
        s = RFC3339.sub("<TIME>", s)
        s = GO_TIME.sub("<TIME>", s)
        s = HTTP_DATE.sub("<TIME>", s)
        s = AGO.sub("<AGO>", s)
        s = INDEX.sub(r"\1<INDEX>", s)
        s = ID25.sub("<ID>", s)
        if self.known:
            s = self.known.sub("<ID>", s)
        s = ID12.sub("<ID>", s)
        s = ENGINE_ID.sub("<ID>", s)
        if self.engine:
            s = s.replace(self.engine, "<ENGINE>")
        s = ENGINE_LINE.sub(r"\1<ENGINE>", s)
        if self.host_re:
            s = self.host_re.sub("<HOST>", s)
        return s

    def text(self, s, normalize=()):
        """Mask a command's output; a table is laid out again (see the module's header).
        `normalize` names further steps: "sort-lines", "progress"."""
        if s == "":
            return s
        s = PEM.sub("<CERT>", s)  # spans lines
        lines = s.split("\n")
        trailing_newline = lines and lines[-1] == ""
        if trailing_newline:
            lines = lines[:-1]
        if lines and HEADER.match(lines[0].rstrip()):
            lines = self.table(lines)
        else:
            lines = [self.line(l) for l in lines]
        if "progress" in normalize:
            lines = progress(lines)
        if "sort-lines" in normalize:
            lines = sorted(lines)
        out = "\n".join(lines)
        return out + "\n" if trailing_newline else out

    def table(self, lines):
        header = lines[0].rstrip()
        starts = [0] + [m.end() for m in re.finditer(r" {2,}(?=\S)", header)]
        rows = []
        for l in lines:
            cells = []
            for n, start in enumerate(starts):
                end = starts[n + 1] if n + 1 < len(starts) else None
                cells.append(l[start:end].strip())
            rows.append(cells)
        names = rows[0]
        for row in rows[1:]:
            for n, cell in enumerate(row):
                if names[n] == "ENGINE VERSION" and cell:
                    row[n] = "<ENGINE>"
                else:
                    row[n] = self.line(cell)
        widths = [max(10, max(len(r[n]) for r in rows) + 3) for n in range(len(names))]
        out = []
        for row in rows:
            padded = [c.ljust(widths[n]) for n, c in enumerate(row[:-1])] + [row[-1]]
            out.append("".join(padded).rstrip())
        return out

    def json(self, value, key=None, parent=None):
        """Mask a decoded JSON value (see the module's header)."""
        if isinstance(value, dict):
            return {k: self.json(v, k, key) for k, v in sorted(value.items())}
        if isinstance(value, list):
            items = [self.json(v, key, parent) for v in value]
            if key == "Addresses" and parent in (None, "NetworksAttachments"):
                items = ["<ADDR>" if isinstance(i, str) else i for i in items]
            if key is None and items and all(isinstance(i, dict) for i in items):
                items.sort(key=lambda i: json.dumps(i, sort_keys=True))
            return items
        if value is None or isinstance(value, bool):
            return value
        if key == "Index" and isinstance(value, int):
            return "<INDEX>"
        if key in COUNT_KEYS and isinstance(value, int):
            return "<N>"
        if isinstance(value, str):
            if key in ENGINE_KEYS or (key == "Version" and value):
                return "<ENGINE>" if value else value
            if key == "CertIssuerPublicKey":
                return "<KEY>"
            if key == "Addr" and parent == "VirtualIPs":
                return "<ADDR>"
            return self.line(value)
        return value

    def json_text(self, s):
        """Mask a JSON document given as text; pretty-printed, keys sorted."""
        return json.dumps(self.json(json.loads(s)), indent=2, sort_keys=True) + "\n"


# A service's UpdateStatus.Message, printed only when a refresh happens to see it.
TIMING_DEPENDENT = {"rollback: manually requested rollback", "rollback: rollback completed"}


def progress(lines):
    """The progress of `service create|update|scale|rollback` without a terminal: one line
    per refresh (5 a second), so how often a line repeats depends on timing. Keeps the first
    of equal lines, drops the "overall progress: k out of n tasks" lines with k neither 0
    nor n (how many tasks were up at some refresh; k can exceed n while a scale-down or a
    rollback stops tasks) and the lines in TIMING_DEPENDENT."""
    seen = set()
    out = []
    for l in lines:
        m = PROGRESS.match(l)
        partial = m and int(m.group(1)) not in (0, int(m.group(2)))
        if l in seen or l in TIMING_DEPENDENT or partial:
            continue
        seen.add(l)
        out.append(l)
    return out


def main(argv):
    p = argparse.ArgumentParser(description="Mask docker output (see the module's header).")
    p.add_argument("kind", choices=["text", "json"])
    p.add_argument("--sort-lines", action="store_true")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--host")
    p.add_argument("--engine")
    p.add_argument("--ids")
    a = p.parse_args(argv)
    ids = []
    if a.ids:
        with open(a.ids, encoding="utf-8") as f:
            ids = f.read().split()
    m = Masker(host=a.host, engine=a.engine, ids=ids)
    data = sys.stdin.read()
    if a.kind == "json":
        sys.stdout.write(m.json_text(data))
    else:
        steps = [n for n, on in (("sort-lines", a.sort_lines), ("progress", a.progress)) if on]
        sys.stdout.write(m.text(data, normalize=steps))


if __name__ == "__main__":
    main(sys.argv[1:])
