"""docker-py (PyPI `docker`) against a shoal daemon, as its users drive a swarm.

Run by crates/cli/tests/docker_py.rs with the project's virtualenv (scripts/install-deps
docker-py), against a single-node cluster:

    DOCKER_HOST=unix:///.../shoal.sock SHOAL_NODE_ID=<id> SHOAL_PUBLISH_PORT=<free port> \
        python test_shoal.py

Each check prints `ok: <what>`; the first failure prints its traceback and exits 1. The
checks are round-trips: what a client sends is read back through the API (spec fields
echoed as sent), and the service answers on its published port through the mesh.
"""

import json
import os
import sys
import time
import traceback
import urllib.request

import docker
from docker.errors import APIError, NotFound
from docker.types import (
    EndpointSpec,
    Resources,
    RestartPolicy,
    ServiceMode,
    UpdateConfig,
)

# Generous: CI runs on two busy cores.
WAIT = 60.0
PROCESS = {"com.shoal.runtime": "process"}


def wait_for(what, probe, timeout=WAIT):
    """Polls `probe` until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}: last {value!r}")
        time.sleep(0.2)


def eq(got, want, what):
    assert got == want, f"{what}: got {got!r}, want {want!r}"


def ok(what):
    print(f"ok: {what}", flush=True)


def check_daemon(client, node_id):
    assert client.ping() is True, "ping"
    v = client.version()
    eq(v["ApiVersion"], "1.44", "version ApiVersion")
    eq(v["Os"], "linux", "version Os")
    assert v.get("Version"), f"version has no Version: {v}"
    ok("version")
    info = client.info()
    swarm = info["Swarm"]
    eq(swarm["LocalNodeState"], "active", "info Swarm.LocalNodeState")
    eq(swarm["NodeID"], node_id, "info Swarm.NodeID")
    eq(swarm["ControlAvailable"], True, "info Swarm.ControlAvailable")
    assert swarm["Cluster"]["ID"], f"info has no Swarm.Cluster.ID: {swarm}"
    ok("info")
    client.swarm.reload()
    attrs = client.swarm.attrs
    eq(attrs["ID"], swarm["Cluster"]["ID"], "swarm ID")
    eq(client.swarm.id, attrs["ID"], "swarm.id")
    for role in ("Worker", "Manager"):
        token = attrs["JoinTokens"][role]
        assert token.startswith("SWMTKN-1-"), f"{role} join token {token!r}"
    ok("swarm attrs")


def check_nodes(client, node_id):
    nodes = client.nodes.list()
    eq([n.id for n in nodes], [node_id], "nodes.list")
    eq(len(client.nodes.list(filters={"role": "manager"})), 1, "nodes.list role=manager")
    eq(len(client.nodes.list(filters={"role": "worker"})), 0, "nodes.list role=worker")
    node = client.nodes.get(node_id)
    eq(node.attrs["Spec"]["Role"], "manager", "node Spec.Role")
    eq(node.attrs["Status"]["State"], "ready", "node Status.State")
    eq(node.attrs["ManagerStatus"]["Leader"], True, "node ManagerStatus.Leader")
    ok("nodes list and get")

    before = node.version
    spec = dict(node.attrs["Spec"])
    spec["Labels"] = {"zone": "a", "disk": "ssd"}
    assert node.update(spec) is True, "node update"
    node.reload()
    eq(node.attrs["Spec"]["Labels"], {"zone": "a", "disk": "ssd"}, "node labels after update")
    eq(node.attrs["Spec"]["Availability"], "active", "node availability kept")
    assert node.version != before, "node version moves with its labels"
    eq(len(client.nodes.list(filters={"node.label": "zone=a"})), 1, "nodes.list node.label")
    # The version read before the change is refused, as Swarm refuses it.
    try:
        client.api.update_node(node_id, before, spec)
        raise AssertionError("a node update with a stale version was accepted")
    except APIError as e:
        assert "out of sequence" in str(e), f"stale node update: {e}"
    spec["Labels"] = {}
    assert node.update(spec) is True, "node labels cleared"
    node.reload()
    eq(node.attrs["Spec"].get("Labels") or {}, {}, "node labels after clearing")
    ok("node update labels")


def running_tasks(service):
    return [
        t
        for t in service.tasks(filters={"desired-state": "running"})
        if t["Status"]["State"] == "running"
    ]


def whoami(port):
    """The task name a whoami answer names, through the mesh on `port`."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            body = r.read().decode()
    except OSError:
        return None
    for line in body.splitlines():
        if line.startswith("Name: "):
            return line[len("Name: "):].strip()
    return None


def check_services(client, node_id, port):
    created = client.services.create(
        "shoal",
        args=["whoami"],
        name="pyweb",
        labels={**PROCESS, "tier": "web"},
        env=["GREETING=hi"],
        mode=ServiceMode("replicated", replicas=1),
        endpoint_spec=EndpointSpec(ports={port: 80}),
        restart_policy=RestartPolicy(condition="on-failure", delay=1_000_000_000, max_attempts=3),
        update_config=UpdateConfig(parallelism=1, delay=0, order="start-first"),
        resources=Resources(mem_limit=256 * 1024 * 1024),
    )
    svc = client.services.get(created.id)
    spec = svc.attrs["Spec"]
    eq(spec["Name"], "pyweb", "Spec.Name")
    eq(spec["Labels"], {**PROCESS, "tier": "web"}, "Spec.Labels")
    cs = spec["TaskTemplate"]["ContainerSpec"]
    eq(cs["Image"], "shoal", "ContainerSpec.Image")
    eq(cs["Args"], ["whoami"], "ContainerSpec.Args")
    eq(cs["Env"], ["GREETING=hi"], "ContainerSpec.Env")
    eq(spec["Mode"], {"Replicated": {"Replicas": 1}}, "Spec.Mode")
    eq(
        spec["TaskTemplate"]["RestartPolicy"],
        {"Condition": "on-failure", "Delay": 1_000_000_000, "MaxAttempts": 3, "Window": 0},
        "TaskTemplate.RestartPolicy",
    )
    eq(
        spec["TaskTemplate"]["Resources"],
        {"Limits": {"MemoryBytes": 256 * 1024 * 1024}},
        "TaskTemplate.Resources",
    )
    eq(spec["UpdateConfig"]["Parallelism"], 1, "UpdateConfig.Parallelism")
    eq(spec["UpdateConfig"]["Order"], "start-first", "UpdateConfig.Order")
    ports = spec["EndpointSpec"]["Ports"]
    eq(
        [(p["Protocol"], p["TargetPort"], p["PublishedPort"]) for p in ports],
        [("tcp", 80, port)],
        "EndpointSpec.Ports",
    )
    endpoint = svc.attrs["Endpoint"]
    eq([p["PublishedPort"] for p in endpoint["Ports"]], [port], "Endpoint.Ports")
    eq(len(endpoint["VirtualIPs"]), 1, "Endpoint.VirtualIPs")
    assert "/" in endpoint["VirtualIPs"][0]["Addr"], f"a VIP is a CIDR: {endpoint}"
    # The VIP is on a network the swarm-scoped list names (Traefik ignores it otherwise).
    swarm_nets = {n.id: n.name for n in client.networks.list(filters={"scope": "swarm"})}
    assert endpoint["VirtualIPs"][0]["NetworkID"] in swarm_nets, f"{endpoint} not on {swarm_nets}"
    ok("services create, spec echoed back")

    eq([s.id for s in client.services.list()], [svc.id], "services.list")
    eq([s.id for s in client.services.list(filters={"name": "pyweb"})], [svc.id], "services.list name")
    eq([s.id for s in client.services.list(filters={"label": "tier=web"})], [svc.id], "services.list label")
    eq(client.services.list(filters={"label": "tier=db"}), [], "services.list other label")
    eq(client.services.get("pyweb").id, svc.id, "services.get by name")
    try:
        client.services.get("nosuch")
        raise AssertionError("services.get of a missing service succeeded")
    except NotFound:
        pass
    ok("services list and get")

    tasks = wait_for("one running task", lambda: running_tasks(svc))
    task = tasks[0]
    eq(task["ServiceID"], svc.id, "task ServiceID")
    eq(task["Slot"], 1, "task Slot")
    eq(task["NodeID"], node_id, "task NodeID")
    eq(task["Spec"]["ContainerSpec"]["Image"], "shoal", "task ContainerSpec.Image")
    eq(task["DesiredState"], "running", "task DesiredState")
    attachments = task["NetworksAttachments"]
    assert attachments and all(a["Network"]["ID"] in swarm_nets for a in attachments), attachments
    assert all("/" in addr for a in attachments for addr in a["Addresses"]), attachments
    name = wait_for("an answer through the mesh", lambda: whoami(port))
    assert name.startswith("pyweb.1."), f"whoami answered as {name!r}"
    ok("service tasks and traffic")

    def logged():
        lines = b"".join(svc.logs(stdout=True, stderr=True)).decode(errors="replace")
        return "whoami" in lines and lines
    wait_for("the service's logs", logged)
    ok("service logs")

    # The update's answer (`{"Warnings": ...}`); an error would have raised.
    svc.scale(2)
    wait_for("two running tasks", lambda: len(running_tasks(svc)) == 2)
    svc.reload()
    spec = svc.attrs["Spec"]
    eq(spec["Mode"], {"Replicated": {"Replicas": 2}}, "Spec.Mode after scale")
    eq(spec["Labels"], {**PROCESS, "tier": "web"}, "labels kept by scale")
    eq(spec["TaskTemplate"]["ContainerSpec"]["Env"], ["GREETING=hi"], "env kept by scale")
    ok("service scale")

    stale = svc.version
    svc.update(labels={**PROCESS, "tier": "front"})
    svc.reload()
    spec = svc.attrs["Spec"]
    eq(spec["Labels"], {**PROCESS, "tier": "front"}, "Spec.Labels after update")
    eq(spec["Mode"], {"Replicated": {"Replicas": 2}}, "replicas kept by a label update")
    eq(spec["TaskTemplate"]["ContainerSpec"]["Args"], ["whoami"], "args kept by a label update")
    assert svc.version != stale, "the version moves with the spec"
    try:
        client.api.update_service(svc.id, stale, labels=PROCESS, fetch_current_spec=True)
        raise AssertionError("a service update with a stale version was accepted")
    except APIError as e:
        assert "out of sequence" in str(e), f"stale service update: {e}"
    ok("service update labels")

    assert svc.remove() is True, "remove"
    eq(client.services.list(filters={"name": "pyweb"}), [], "services.list after remove")
    try:
        client.services.get(svc.id)
        raise AssertionError("a removed service is still there")
    except NotFound:
        pass
    ok("service remove")


def no_nulls(v):
    """`v` without its null members: docker-py sends some unset fields as null, which a
    Go server reads as absent."""
    if isinstance(v, dict):
        return {k: no_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [no_nulls(x) for x in v]
    return v


def check_spec_round_trip(client):
    """A container service's whole TaskTemplate, as docker-py builds it, comes back as
    sent (docker-py's own integration tests compare Mounts, Resources, LogDriver and the
    like after a create). No replicas, so nothing runs."""
    from docker.types import ContainerSpec, DNSConfig, Healthcheck, Mount, TaskTemplate

    template = TaskTemplate(
        container_spec=ContainerSpec(
            "registry.test/app:1",
            command=["/app"],
            args=["--serve", "80"],
            hostname="app-{{.Task.Slot}}",
            env={"A": "1"},
            workdir="/srv",
            user="101",
            labels={"c": "d"},
            mounts=[
                Mount("/data", "/srv/data", type="bind", read_only=True),
                Mount("/cache", "cache", type="volume", labels={"k": "v"}),
            ],
            stop_grace_period=20_000_000_000,
            tty=True,
            groups=["wheel"],
            read_only=True,
            stop_signal="SIGQUIT",
            healthcheck=Healthcheck(
                test=["CMD", "true"], interval=2_000_000_000, timeout=1_000_000_000, retries=4
            ),
            hosts={"db": "10.0.0.1"},
            dns_config=DNSConfig(nameservers=["1.1.1.1"], options=["ndots:2"]),
            cap_add=["NET_ADMIN"],
            sysctls={"net.core.somaxconn": "1024"},
        ),
        resources=Resources(cpu_limit=500_000_000, mem_limit=268435456, mem_reservation=67108864),
        restart_policy=RestartPolicy(condition="any", delay=0, max_attempts=0),
        log_driver={"Name": "json-file", "Options": {"max-size": "10m"}},
        force_update=2,
    )
    sent = no_nulls(json.loads(json.dumps(template)))
    created = client.api.create_service(
        template,
        name="pyspec",
        labels={"stack": "py"},
        mode=ServiceMode("replicated", replicas=0),
    )
    spec = client.api.inspect_service(created["ID"])["Spec"]
    for key, want in sent.items():
        eq(no_nulls(spec["TaskTemplate"].get(key)), want, f"TaskTemplate.{key}")
    eq(spec["Labels"], {"stack": "py"}, "Spec.Labels")
    eq(spec["Mode"], {"Replicated": {"Replicas": 0}}, "Spec.Mode")
    eq(client.api.tasks(filters={"service": created["ID"]}), [], "no tasks for no replicas")
    client.api.remove_service(created["ID"])
    ok("a container spec round-trips as sent")


def check_secrets(client):
    secret = client.secrets.create(name="pysecret", data=b"hush", labels={"app": "py"})
    got = client.secrets.get(secret.id)
    eq(got.name, "pysecret", "secret Spec.Name")
    eq(got.attrs["Spec"]["Labels"], {"app": "py"}, "secret Spec.Labels")
    assert "Data" not in got.attrs["Spec"], "a secret's data is never shown"
    eq([s.id for s in client.secrets.list(filters={"name": "pysecret"})], [secret.id], "secrets.list name")
    assert got.remove() is True, "secret remove"
    try:
        client.secrets.get(secret.id)
        raise AssertionError("a removed secret is still there")
    except NotFound:
        pass
    ok("secrets create, list, get, remove")


def check_configs(client):
    import base64

    config = client.configs.create(name="pyconfig", data=b"key=value", labels={"app": "py"})
    got = client.configs.get(config.id)
    eq(got.name, "pyconfig", "config Spec.Name")
    eq(got.attrs["Spec"]["Labels"], {"app": "py"}, "config Spec.Labels")
    eq(base64.b64decode(got.attrs["Spec"]["Data"]), b"key=value", "config Spec.Data")
    eq([c.id for c in client.configs.list(filters={"name": "pyconfig"})], [config.id], "configs.list name")
    assert got.remove() is True, "config remove"
    try:
        client.configs.get(config.id)
        raise AssertionError("a removed config is still there")
    except NotFound:
        pass
    ok("configs create, list, get, remove")


def main():
    node_id = os.environ["SHOAL_NODE_ID"]
    port = int(os.environ["SHOAL_PUBLISH_PORT"])
    client = docker.from_env(timeout=60)
    try:
        check_daemon(client, node_id)
        check_nodes(client, node_id)
        check_services(client, node_id, port)
        check_spec_round_trip(client)
        check_secrets(client)
        check_configs(client)
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
