"""The docker commands and Engine API requests the goldens beside this file are made of,
defined once and run against either engine:

  scripts/record-docker-golden  against a real Docker Swarm on this machine's Docker Engine,
                                writing the goldens (`Recorder.write`);
  scripts/docker-compat         against a shoal daemon (`DOCKER_HOST` on its socket),
                                comparing with the goldens.

`record(r)` is the sequence. A `Recorder` says which engine it talks to: the socket its API
requests go to (`sock`), the environment the docker commands run in (`env`, None: this
process's), the `docker swarm init` command line (`init_args`), the published port of the
service `web` (`web_port`), the folder of the stack it deploys (`stack_dir`: the compose
file, which publishes the stack's port, and its secret and config files) and the highest API
version the requests are made at (`wanted_api`; the engine's own if lower). Against real
Swarm every one of them has its default.
No container of the sequence's is left when it ends: `no_containers` waits for them to go
(on the same engine for Swarm; shoal's are on the local Docker Engine, see docker-compat).
A strict recorder stops at the first request or wait that fails; one that is not strict notes
it in `problems` and goes on, so one failing step does not hide the steps after it.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
STACK_DIR = HERE / "stack"

IMAGE = "shoal-golden/app:1"
SOCK = "/var/run/docker.sock"
# The newest API version the CLI's requests are compared at; an older engine answers at its
# own (the CLI negotiates down the same way).
WANTED_API = (1, 44)
WEB_PORT = 8080
INIT_ARGS = ["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"]

# The prefix of progress lines on stderr: the name of the script running the sequence.
PROG = "record-docker-golden"


def web_args(port=WEB_PORT):
    return [
        "--name", "web", "--replicas", "2", "-p", f"{port}:80",
        "--env", "SHOAL_TASK_NAME={{.Task.Name}}",
        IMAGE, "shoal", "whoami", "--port", "80",
    ]  # fmt: skip


WEB_ARGS = web_args()


def log(msg):
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def sh(*args, check=True, stdin=None, env=None):
    """Run a command quietly and return its stdout; raise on failure when `check`."""
    p = subprocess.run(
        args, input=stdin, capture_output=True, text=True, check=False, env=env
    )
    if check and p.returncode != 0:
        raise RuntimeError(f"{shlex.join(args)}: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def filters(f):
    """A `filters` query value: compact JSON, percent-encoded."""
    return urllib.parse.quote(json.dumps(f, separators=(",", ":")), safe="")


def swarm_state(env=None):
    return sh(
        "docker", "info", "--format", "{{.Swarm.LocalNodeState}}", check=False, env=env
    ).strip()


class Recorder:
    def __init__(
        self,
        tmp,
        sock=SOCK,
        env=None,
        init_args=INIT_ARGS,
        web_port=WEB_PORT,
        stack_dir=STACK_DIR,
        wanted_api=WANTED_API,
        strict=True,
    ):
        self.tmp = Path(tmp)
        self.sock = sock
        self.env = env
        self.init_args = list(init_args)
        self.web_port = web_port
        self.stack_dir = Path(stack_dir)
        self.wanted_api = tuple(wanted_api)
        self.strict = strict
        self.goldens = []  # (name, command, exit, stdout, stderr, sort_lines, stdin)
        self.api = []  # (file name, text, is_json)
        self.routes = {}  # file name -> (method and path, status, expected status)
        self.problems = []  # what failed, when not strict
        self.ids = set()
        self.api_version = "1.41"

    def fail(self, msg):
        if self.strict:
            raise RuntimeError(msg)
        log(msg)
        self.problems.append(msg)

    def sh(self, *args, check=True, stdin=None):
        """`sh` in this engine's environment."""
        return sh(*args, check=check, stdin=stdin, env=self.env)

    # --- the Engine API -------------------------------------------------------------
    def curl(self, path, method="GET", versioned=True):
        """(status, headers, body) of one request on the engine's socket."""
        url = "http://localhost" + (f"/v{self.api_version}" if versioned else "") + path
        headers = self.tmp / "headers"
        args = ["curl", "-sS", "--unix-socket", self.sock, "-D", str(headers), "-o", "-"]
        args += ["-I"] if method == "HEAD" else ["-X", method]
        body = sh(*args, url)
        lines = headers.read_text().replace("\r", "").strip().split("\n")
        status = int(lines[0].split()[1])
        return status, lines, body

    def get_json(self, path):
        status, _, body = self.curl(path)
        if status != 200:
            self.fail(f"GET {path}: {status} {body.strip()}")
            return {}
        return json.loads(body)

    def save_api(self, name, path, expect=200):
        status, _, body = self.curl(path)
        self.routes[name] = (f"GET {path}", status, expect)
        if status != expect:
            self.fail(f"GET {path}: {status}, expected {expect}: {body.strip()}")
        self.api.append((name, body, True))
        self.collect_ids()

    def collect_ids(self):
        """Remember every swarm object's ID, so its short form is masked wherever it shows."""
        for route in ("nodes", "services", "tasks", "secrets", "configs", "networks"):
            status, _, body = self.curl("/" + route)
            if status == 503:  # not in a swarm (before init, after leave)
                return
            try:
                objects = json.loads(body)
            except ValueError:
                if self.strict:
                    raise
                continue
            for obj in objects if isinstance(objects, list) else []:
                self.ids.add(obj.get("ID") or obj.get("Id"))

    # --- the CLI --------------------------------------------------------------------
    def run(self, name, args, normalize=(), stdin=None, stdin_name=None):
        """Run one docker command with stdout and stderr not a terminal; keep all three."""
        log(shlex.join(args))
        p = subprocess.run(
            args,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            check=False,
            env=self.env,
        )
        self.goldens.append(
            (name, shlex.join(args), p.returncode, p.stdout, p.stderr, normalize, stdin_name)
        )
        self.collect_ids()
        return p

    # --- waiting --------------------------------------------------------------------
    def wait(self, what, done, timeout=90):
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                self.fail(f"timed out waiting for {what}")
                return
            time.sleep(0.5)

    def running(self, service, replicas):
        """Whether `service` has `replicas` tasks running and no other task meant to run."""
        tasks = self.get_json(
            "/tasks?filters="
            + filters({"service": {service: True}, "desired-state": {"running": True}})
        )
        return len(tasks) == replicas and all(t["Status"]["State"] == "running" for t in tasks)

    def no_containers(self, label):
        """Whether no container of the engine's tasks carries `label` (Swarm's label of a
        service's or a stack's containers)."""
        return not self.sh("docker", "ps", "-aq", "--filter", f"label={label}").strip()

    # --- writing --------------------------------------------------------------------
    def cli_texts(self, masker):
        """{name: the text of its `cli/<name>.txt`}, masked (format: the README)."""
        texts = {}
        for name, cmd, code, out, err, normalize, stdin_name in self.goldens:
            head = [f"command: {masker.line(cmd)}"]
            if stdin_name:
                head.append(f"stdin: {stdin_name}")
            head.append(f"exit: {code}")
            if normalize:
                head.append("normalize: " + " ".join(normalize))
            text = "\n".join(head) + "\n--- stdout\n"
            text += section(masker.text(out, normalize=normalize))
            text += "--- stderr\n" + section(masker.text(err))
            texts[name] = text
        return texts

    def api_texts(self, masker):
        """{file name: the text of its `api/<name>`}, masked."""
        return {
            name: masker.json_text(body) if is_json else section(masker.text(body))
            for name, body, is_json in self.api
        }

    def write(self, masker, out=HERE):
        shutil.rmtree(out / "cli", ignore_errors=True)
        shutil.rmtree(out / "api", ignore_errors=True)
        (out / "cli").mkdir()
        (out / "api").mkdir()
        for name, text in self.cli_texts(masker).items():
            (out / "cli" / f"{name}.txt").write_text(text)
        for name, text in self.api_texts(masker).items():
            (out / "api" / name).write_text(text)


def section(text):
    return text if text == "" or text.endswith("\n") else text + "\n"


def shoal_binary(root):
    """$SHOAL_BIN, else target/release/shoal of the workspace at `root`, built (niced) when
    missing."""
    if os.environ.get("SHOAL_BIN"):
        return Path(os.environ["SHOAL_BIN"])
    meta = json.loads(
        sh("cargo", "metadata", "--format-version", "1", "--no-deps", "--manifest-path",
           str(root / "Cargo.toml"))
    )  # fmt: skip
    bin = Path(meta["target_directory"]) / "release/shoal"
    if not bin.exists():
        log(f"building {bin}")
        subprocess.run(
            ["nice", "-n", "10", "cargo", "build", "--release", "-p", "shoal-cli"],
            cwd=root,
            check=True,
        )
    return bin


def libraries(program):
    out = sh("ldd", str(program), check=False)
    return [Path(w) for l in out.splitlines() for w in l.split()[:3] if w.startswith("/")]


def import_image(bin, tmp):
    """`docker import` of a root filesystem: the stripped binary, sh, sleep, their libraries.
    Into the Docker Engine of this process's environment."""
    root = Path(tmp) / "rootfs"
    for d in ("usr/local/bin", "bin", "tmp", "etc"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    shoal = root / "usr/local/bin/shoal"
    if subprocess.run(["strip", "-o", str(shoal), str(bin)], check=False).returncode != 0:
        shutil.copy(bin, shoal)
    programs = [(bin, None), (shutil.which("sh"), "bin/sh"), (shutil.which("sleep"), "bin/sleep")]
    for program, to in programs:
        program = Path(program).resolve()
        if to:
            shutil.copy(program, root / to)
        for lib in libraries(program):
            dest = root / str(lib).lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(lib, dest)
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(
        ["docker", "import", "--change", "ENV PATH=/usr/local/bin:/bin",
         "--change", 'CMD ["shoal", "whoami"]', "-", IMAGE],
        stdin=tar.stdout, capture_output=True, check=True,
    )  # fmt: skip
    tar.wait()


def record(r):
    engine = r.sh("docker", "version", "--format", "{{.Server.Version}}").strip()
    _, ping, _ = r.curl("/_ping", "HEAD", versioned=False)
    engine_api = next(
        h.split(":", 1)[1].strip() for h in ping if h.lower().startswith("api-version:")
    )
    version = min(tuple(map(int, engine_api.split("."))), r.wanted_api)
    r.api_version = ".".join(map(str, version))
    log(f"engine {engine}, API {engine_api}, recording at {r.api_version}")
    web = web_args(r.web_port)

    # Swarm and node.
    r.run("swarm-init", r.init_args)
    r.run("swarm-join-token-worker", ["docker", "swarm", "join-token", "worker"])
    r.run("swarm-join-token-manager", ["docker", "swarm", "join-token", "manager"])
    r.run("node-ls", ["docker", "node", "ls"])
    r.run("node-inspect-self", ["docker", "node", "inspect", "self"])
    r.run("node-inspect-pretty-self", ["docker", "node", "inspect", "--pretty", "self"])
    # `self` names the current node for inspect and ps only: update takes it as a name.
    r.run("node-update-label-add-self", ["docker", "node", "update", "--label-add", "a=b", "self"])
    node_id = r.sh("docker", "info", "--format", "{{.Swarm.NodeID}}").strip()
    r.run("node-update-label-add", ["docker", "node", "update", "--label-add", "a=b", node_id])
    r.run("node-inspect-nosuch", ["docker", "node", "inspect", "nosuch"])

    # A service created detached, then again waiting for it (progress without a terminal).
    r.run("service-create-detach", ["docker", "service", "create", "-d", *web])
    r.wait("web to run 2 tasks", lambda: r.running("web", 2))
    r.sh("docker", "service", "rm", "web")
    r.wait("web's containers to go", lambda: r.no_containers("com.docker.swarm.service.name=web"))
    progress = ["progress"]
    r.run("service-create", ["docker", "service", "create", *web], normalize=progress)
    r.wait("web to run 2 tasks", lambda: r.running("web", 2))
    r.run("service-ls", ["docker", "service", "ls"])
    r.run("service-ps", ["docker", "service", "ps", "web"])
    r.run("node-ps-self", ["docker", "node", "ps", "self"])
    r.run("service-inspect", ["docker", "service", "inspect", "web"])
    r.run("service-inspect-pretty", ["docker", "service", "inspect", "--pretty", "web"])

    # The API's shapes while web runs.
    status, headers, _ = r.curl("/_ping", "HEAD", versioned=False)
    r.api.append(("ping-headers.txt", "\n".join(h for h in headers if h) + "\n", False))
    r.routes["ping-headers.txt"] = ("HEAD /_ping", status, 200)
    r.save_api("version.json", "/version")
    r.save_api("info.json", "/info")
    r.save_api("swarm.json", "/swarm")
    r.save_api("nodes.json", "/nodes")
    r.save_api("services.json", "/services?status=true")
    web_id = r.get_json("/services/web").get("ID", "")
    r.save_api("service-insert-defaults.json", f"/services/{web_id}?insertDefaults=true")
    r.save_api("tasks.json", "/tasks")
    r.save_api("networks-swarm.json", "/networks?filters=" + filters({"scope": {"swarm": True}}))
    r.save_api("service-nosuch-404.json", "/services/nosuch", expect=404)

    # Something to log: whoami prints a line as it starts; stop-first updates add more.
    r.run("service-logs", ["docker", "service", "logs", "web"], normalize=["sort-lines"])
    r.run("service-update-env-add", ["docker", "service", "update", "--env-add", "X=1", "web"],
          normalize=progress)  # fmt: skip
    r.run("service-scale", ["docker", "service", "scale", "web=3"], normalize=progress)
    r.run("service-rollback", ["docker", "service", "rollback", "web"], normalize=progress)
    r.run("service-ps-after-rollback", ["docker", "service", "ps", "web"])
    r.run("service-inspect-nosuch", ["docker", "service", "inspect", "nosuch"])
    r.run("service-scale-nosuch", ["docker", "service", "scale", "nosuch=1"])
    r.run("service-rm", ["docker", "service", "rm", "web"])
    r.wait("web's containers to go", lambda: r.no_containers("com.docker.swarm.service.name=web"))

    # Secrets and configs.
    secret = (r.stack_dir / "secret.txt").read_text()
    config = (r.stack_dir / "config.txt").read_text()
    r.run("secret-create", ["docker", "secret", "create", "s1", "-"],
          stdin=secret, stdin_name="stack/secret.txt")  # fmt: skip
    r.run("config-create", ["docker", "config", "create", "c1", "-"],
          stdin=config, stdin_name="stack/config.txt")  # fmt: skip
    r.run("secret-ls", ["docker", "secret", "ls"])
    r.run("secret-inspect", ["docker", "secret", "inspect", "s1"])
    r.run("config-ls", ["docker", "config", "ls"])
    r.run("config-inspect", ["docker", "config", "inspect", "c1"])
    r.save_api("secrets.json", "/secrets")
    r.save_api("configs.json", "/configs")
    r.run("secret-rm", ["docker", "secret", "rm", "s1"])
    r.run("config-rm", ["docker", "config", "rm", "c1"])

    # A stack. The order it creates and removes services in is not fixed.
    os.chdir(r.stack_dir)
    r.run("stack-deploy", ["docker", "stack", "deploy", "-c", "compose.yml", "st"],
          normalize=["sort-lines"])  # fmt: skip
    r.wait("st_web to run 2 tasks", lambda: r.running("st_web", 2))
    r.wait("st_echo to run 1 task", lambda: r.running("st_echo", 1))
    r.run("stack-ls", ["docker", "stack", "ls"])
    r.run("stack-ps", ["docker", "stack", "ps", "st"])
    r.run("stack-services", ["docker", "stack", "services", "st"])
    stack = filters({"label": {"com.docker.stack.namespace=st": True}})
    r.save_api("stack-services.json", "/services?status=true&filters=" + stack)
    r.save_api("stack-networks.json", "/networks?filters=" + stack)
    r.save_api("stack-secrets.json", "/secrets?filters=" + stack)
    r.save_api("stack-configs.json", "/configs?filters=" + stack)
    r.run("stack-rm", ["docker", "stack", "rm", "st"], normalize=["sort-lines"])
    r.wait("the stack's containers to go",
           lambda: r.no_containers("com.docker.stack.namespace=st"))  # fmt: skip
    r.run("swarm-leave", ["docker", "swarm", "leave", "--force"])
    return engine
