"""deploy/: every manifest renders and validates, and the defects that once made it not run stay
fixed.

- Kubernetes: each Kustomize tree under deploy/kubernetes renders with ``kubectl kustomize``
  (offline) and every object validates strictly (unknown fields are errors) against the API
  schemas of one fixed Kubernetes version, shipped by ``kubernetes-validate``.
- Compose: deploy/compose.yaml validates against the Compose Specification's JSON schema (the
  copy ``check-jsonschema`` ships), as there is no Docker daemon to ask.
- Then what broke before: a node registering 0.0.0.0, a plain gRPC probe on an mTLS-only port,
  node pods that never imported data, no database secret, no torch that the image could install.

Without kubectl the Kubernetes tests skip locally and fail under CI=true.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from helpers import in_ci

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUSTOMIZE_ROOT = DEPLOY / "kubernetes"
KUSTOMIZATIONS = sorted(
    p.parent.relative_to(KUSTOMIZE_ROOT).as_posix()
    for p in KUSTOMIZE_ROOT.rglob("kustomization.yaml")
)
NETWORK = "network"  # the whole network, one namespace per party
KUBERNETES_VERSION = "1.32.0"
HEALTHCHECK = "accord-healthcheck"
# addresses no other party can call (listen addresses, not ones to advertise)
UNREACHABLE_HOSTS = {"0.0.0.0", "::", "[::]", "127.0.0.1", "localhost", ""}  # noqa: S104
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH = "torch==2.13.0"

Obj = dict[str, Any]


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


# -- Kubernetes ------------------------------------------------------------------------------


@functools.cache
def _render(kustomization: str) -> tuple[Obj, ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        _unavailable("kubectl is not installed: it renders deploy/kubernetes (kubectl kustomize)")
    assert kubectl is not None
    done = subprocess.run(
        [kubectl, "kustomize", str(KUSTOMIZE_ROOT / kustomization)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"kubectl kustomize {kustomization} failed:\n{done.stderr}"
    objects = tuple(d for d in yaml.safe_load_all(done.stdout) if d)
    assert objects, f"{kustomization} renders nothing"
    return objects


def _kind(objects: tuple[Obj, ...], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def _component(obj: Obj) -> str:
    return str(obj["metadata"].get("labels", {}).get("app.kubernetes.io/component", ""))


def _pod(statefulset: Obj) -> Obj:
    return dict(statefulset["spec"]["template"]["spec"])


def _main(statefulset: Obj) -> Obj:
    containers = _pod(statefulset)["containers"]
    assert len(containers) == 1, f"{_ref(statefulset)}: one Accord server per pod"
    return dict(containers[0])


def _ref(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"{obj['kind']} {meta.get('namespace', '-')}/{meta['name']}"


def _flags(args: list[str]) -> dict[str, str]:
    """``--name=value`` and ``--name value`` arguments as a mapping."""
    flags: dict[str, str] = {}
    for i, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        if "=" in arg:
            name, value = arg.split("=", 1)
            flags[name] = value
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            flags[arg] = args[i + 1]
        else:
            flags[arg] = ""
    return flags


def _env(objects: tuple[Obj, ...], statefulset: Obj, container: Obj) -> dict[str, str]:
    """The container's environment with ConfigMap references resolved, as the kubelet would."""
    namespace = statefulset["metadata"].get("namespace")
    maps = {
        m["metadata"]["name"]: m.get("data", {})
        for m in _kind(objects, "ConfigMap")
        if m["metadata"].get("namespace") == namespace
    }
    values: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            values[var["name"]] = var["value"]
            continue
        ref = var.get("valueFrom", {}).get("configMapKeyRef")
        if ref is not None:
            assert ref["name"] in maps, f"{_ref(statefulset)}: no ConfigMap {ref['name']}"
            values[var["name"]] = maps[ref["name"]][ref["key"]]
    return values


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\(([A-Z_][A-Z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def _split_host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    assert host and port.isdigit(), f"{address!r} is not host:port"
    return host, int(port)


def _service_for(objects: tuple[Obj, ...], host: str, from_namespace: str | None) -> Obj | None:
    """The rendered Service that ``host`` names in cluster DNS, if any."""
    for service in _kind(objects, "Service"):
        name, namespace = service["metadata"]["name"], service["metadata"].get("namespace")
        names = {f"{name}.{namespace}.svc.cluster.local", f"{name}.{namespace}.svc"}
        if namespace == from_namespace:
            names.add(name)
        if host in names:
            return service
    return None


def _servers(objects: tuple[Obj, ...]) -> Iterator[tuple[Obj, Obj]]:
    for statefulset in _kind(objects, "StatefulSet"):
        yield statefulset, _main(statefulset)


def test_the_kubernetes_packaging_is_kustomize_and_nothing_unrendered_is_left() -> None:
    assert KUSTOMIZATIONS, "deploy/kubernetes holds no kustomization.yaml"
    assert {"node", "coordinator", NETWORK} <= set(KUSTOMIZATIONS)
    charts = list(DEPLOY.rglob("Chart.yaml"))
    assert not charts, f"a Helm chart that nothing here renders or validates: {charts}"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_kubernetes_object_validates_strictly(kustomization: str) -> None:
    from kubernetes_validate import utils

    for obj in _render(kustomization):
        try:
            utils.validate(obj, KUBERNETES_VERSION, strict=True)
        except utils.ValidationError as err:
            path = ".".join(str(p) for p in err.path)
            pytest.fail(f"{kustomization}: {_ref(obj)}: {path}: {err.message}")
        except utils.SchemaNotFoundError as err:
            pytest.fail(f"{kustomization}: {_ref(obj)}: {err.message}")


def test_strict_validation_would_catch_a_misspelt_field() -> None:
    """The check above is not vacuous: a field Kubernetes does not know is an error."""
    from kubernetes_validate import utils

    statefulset = json.loads(json.dumps(_kind(_render("node"), "StatefulSet")[0]))
    statefulset["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"][
        "comand"
    ] = []
    with pytest.raises(utils.ValidationError):
        utils.validate(statefulset, KUBERNETES_VERSION, strict=True)


def test_nodes_advertise_the_address_of_their_service() -> None:
    objects = _render(NETWORK)
    nodes = [(s, c) for s, c in _servers(objects) if _component(s) == "node"]
    assert len(nodes) == 4, "pay, shop, social and label"
    for statefulset, container in nodes:
        env = _env(objects, statefulset, container)
        args = [_expand(a, env) for a in container["args"]]
        assert args[:2] == ["node", "serve"], _ref(statefulset)
        flags = _flags(args)
        _, listen_port = _split_host_port(flags["--listen"])
        assert "--advertise" in flags, f"{_ref(statefulset)} registers its listen address"
        host, port = _split_host_port(flags["--advertise"])
        assert host not in UNREACHABLE_HOSTS, f"{_ref(statefulset)} advertises {host}"
        namespace = statefulset["metadata"].get("namespace")
        service = _service_for(objects, host, namespace)
        assert service is not None, f"{_ref(statefulset)} advertises {host}: no such Service"
        assert service["metadata"].get("namespace") == namespace, "its own Service"
        ports = {p["port"]: p.get("targetPort") for p in service["spec"]["ports"]}
        assert port in ports, f"{_ref(service)} has no port {port}"
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        target = ports[port]
        assert named.get(target, target) == listen_port, f"{_ref(service)} misses the listener"
        selector = service["spec"]["selector"].items()
        assert selector <= statefulset["spec"]["template"]["metadata"]["labels"].items()
        # ... and reaches the coordinator by its Service too
        coordinator, coordinator_port = _split_host_port(flags["--coordinator"])
        target_service = _service_for(objects, coordinator, namespace)
        assert target_service is not None, f"{_ref(statefulset)}: {coordinator} is no Service"
        assert _component(target_service) == "coordinator"
        assert coordinator_port in {p["port"] for p in target_service["spec"]["ports"]}


def test_nodes_reach_the_coordinators_fleet_by_the_name_its_certificate_carries() -> None:
    """The coordinator serves the standing SuperLink; a node's own SuperNode dials the Fleet
    address the coordinator advertises and checks the certificate against that name, so each
    node's namespace resolves `coordinator` to the coordinator's Service."""
    objects = _render(NETWORK)
    (coordinator,) = [(s, c) for s, c in _servers(objects) if _component(s) == "coordinator"]
    flags = _flags(coordinator[1]["args"])
    fleet_port = _split_host_port(flags["--fleet-listen"])[1]
    host, port = _split_host_port(flags["--fleet-advertise"])
    assert host == "coordinator" and port == fleet_port
    namespace = coordinator[0]["metadata"].get("namespace")
    service = _service_for(objects, f"coordinator.{namespace}.svc.cluster.local", None)
    assert service is not None and fleet_port in {p["port"] for p in service["spec"]["ports"]}
    nodes = [s for s, _ in _servers(objects) if _component(s) == "node"]
    for statefulset in nodes:
        alias = _service_for(objects, host, statefulset["metadata"].get("namespace"))
        assert alias is not None, f"{_ref(statefulset)}: `coordinator` resolves to nothing"
        assert alias["spec"].get("type") == "ExternalName"
        assert alias["spec"]["externalName"] == f"coordinator.{namespace}.svc.cluster.local"


def test_every_probe_speaks_mtls() -> None:
    """The servers listen with mTLS only: a grpc/tcp/http probe cannot tell health there."""
    objects = _render(NETWORK)
    for statefulset, container in _servers(objects):
        port = container["ports"][0]["containerPort"]
        assert "readinessProbe" in container, f"{_ref(statefulset)} is never ready"
        assert "livenessProbe" in container, _ref(statefulset)
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = container.get(kind)
            if probe is None:
                continue
            assert set(probe) & {"grpc", "tcpSocket", "httpGet"} == set(), (
                f"{_ref(statefulset)} {kind} cannot speak mTLS"
            )
            command = probe["exec"]["command"]
            assert command[0] == HEALTHCHECK, f"{_ref(statefulset)} {kind}: {command}"
            flags = _flags(command)
            assert "--plaintext" not in flags
            assert flags["--pki"] == "/pki", "the pod's own certificate"
            assert flags["--target"] == f"127.0.0.1:{port}"
        readiness = _flags(container["readinessProbe"]["exec"]["command"])
        assert readiness.get("--ready-file") == "/data/endpoint", "ready once registered"
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/pki", "/data"} <= mounts


def test_node_pods_import_their_data_before_serving() -> None:
    objects = _render(NETWORK)
    for statefulset, container in _servers(objects):
        if _component(statefulset) != "node":
            continue
        env = _env(objects, statefulset, container)
        inits = _pod(statefulset).get("initContainers", [])
        importers = [
            c
            for c in inits
            if "node import" in " ".join([*c.get("command", []), *c.get("args", [])])
        ]
        assert len(importers) == 1, f"{_ref(statefulset)} never imports its data"
        script = " ".join(importers[0].get("args", [])).replace("\\\n", " ")
        line = next(x for x in script.splitlines() if "node import" in x)
        flags = _flags(shlex.split(line.split("node import", 1)[1]))
        assert flags["--channel"] == "$ACCORD_CHANNEL"
        assert flags["--data-dir"] == "/data"
        assert "--db" in flags, "the import writes where the node reads"
        init_env = _env(objects, statefulset, importers[0])
        assert init_env["ACCORD_CHANNEL"] == env["ACCORD_CHANNEL"]
        mounts = {m["name"]: m["mountPath"] for m in importers[0]["volumeMounts"]}
        assert mounts.get("data") == "/data", "the node's own volume"


def test_the_database_url_comes_from_a_secret() -> None:
    objects = _render(NETWORK)
    rendered = yaml.safe_dump_all(objects)
    assert "postgresql" not in rendered, "a database URL in plain text"
    for statefulset in _kind(objects, "StatefulSet"):
        pod = _pod(statefulset)
        for container in [*pod["containers"], *pod.get("initContainers", [])]:
            text = " ".join([*container.get("command", []), *container.get("args", [])])
            if "serve" not in text and "node import" not in text:
                continue
            env = {v["name"]: v.get("valueFrom", {}) for v in container.get("env", [])}
            ref = env.get("ACCORD_DB_URL", {}).get("secretKeyRef")
            assert ref == {"name": "accord-db", "key": "url"}, (
                f"{_ref(statefulset)} {container['name']}: the database secret is unused"
            )
            assert re.search(r"--db[= ]\"?\$\(?ACCORD_DB_URL\)?", text), (
                f"{_ref(statefulset)} {container['name']} does not pass the database URL"
            )


def test_state_lives_on_persistent_volumes() -> None:
    objects = _render(NETWORK)
    for statefulset, container in _servers(objects):
        claims = {t["metadata"]["name"] for t in statefulset["spec"]["volumeClaimTemplates"]}
        assert "data" in claims, f"{_ref(statefulset)} keeps its state nowhere"
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts.get("data") == "/data", f"{_ref(statefulset)} does not mount its PVC"
        assert "--data-dir=/data" in container["args"]
        # keys are 0600 on the volume and must stay so: no recursive chmod on every start
        assert _pod(statefulset)["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"


def test_party_credentials_reach_the_server_as_its_user_only() -> None:
    """Secret files are root's; the coordinator refuses a signer.key others may read."""
    objects = _render(NETWORK)
    for statefulset, container in _servers(objects):
        pod = _pod(statefulset)
        volumes = {v["name"]: v for v in pod["volumes"]}
        pki = next(m for m in container["volumeMounts"] if m["mountPath"] == "/pki")
        assert "emptyDir" in volumes[pki["name"]], "a copy made for the service user"
        copier = pod["initContainers"][0]
        assert "chmod 0600" in " ".join(copier["command"])
        sources = [volumes[m["name"]] for m in copier["volumeMounts"]]
        assert {"secretName": "accord-pki", "defaultMode": 0o440} in [
            v.get("secret") for v in sources
        ]


# -- Compose ---------------------------------------------------------------------------------


@functools.cache
def _compose() -> Obj:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def _compose_schema() -> Obj:
    try:
        vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    except ModuleNotFoundError:
        _unavailable("check-jsonschema (a dev dependency) ships the Compose schema; install .[dev]")
        raise
    return dict(json.loads((vendor / "compose-spec.json").read_text()))


def _services() -> dict[str, Obj]:
    return dict(_compose()["services"])


def _argv(service: Obj) -> list[str]:
    """The service's command line: entrypoint and command, a shell script split into words."""
    parts: list[str] = []
    for key in ("entrypoint", "command"):
        value = service.get(key, [])
        parts += shlex.split(value) if isinstance(value, str) else [str(v) for v in value]
    if parts[:2] == ["sh", "-c"]:
        return shlex.split(" ".join(parts[2:]).replace("$$", "$"))
    return parts


def _serve_argv(service: Obj) -> list[str] | None:
    """The arguments after `node serve`, wherever the command line runs it; None if it doesn't."""
    argv = _argv(service)
    for i in range(len(argv) - 1):
        if argv[i : i + 2] == ["node", "serve"]:
            return argv[i:]
    return None


def _node_services() -> dict[str, Obj]:
    return {name: s for name, s in _services().items() if _serve_argv(s) is not None}


def test_compose_file_follows_the_compose_specification() -> None:
    schema = _compose_schema()
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors = [
        f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in validator.iter_errors(_compose())
    ]
    assert not errors, "\n".join(errors)
    # not vacuous: a misspelt key is refused
    broken = json.loads(json.dumps(_compose()))
    broken["services"]["coordinator"]["healtcheck"] = {}
    assert list(validator.iter_errors(broken))


def test_compose_nodes_advertise_their_service_name() -> None:
    services = _services()
    nodes = _node_services()
    assert set(nodes) == {"pay", "shop", "social", "label"}
    for name, service in nodes.items():
        flags = _flags(_serve_argv(service) or [])
        _, listen_port = _split_host_port(flags["--listen"])
        assert "--advertise" in flags, f"{name} registers its listen address {flags['--listen']}"
        host, port = _split_host_port(flags["--advertise"])
        assert host not in UNREACHABLE_HOSTS, f"{name} advertises {host}"
        assert host in services, f"{name} advertises {host}, which no container resolves"
        assert "network_mode" not in services[host], f"{host} has no name of its own"
        assert (host, port) == (name, listen_port)
        coordinator, _ = _split_host_port(flags["--coordinator"])
        assert coordinator in services


def test_compose_health_checks_use_mtls_or_flowers_health_port() -> None:
    for name, service in _services().items():
        if service.get("restart") == "no":
            continue  # one-shot
        test = service.get("healthcheck", {}).get("test")
        assert test, f"{name} has no health check"
        assert test[0] == "CMD" and test[1] == HEALTHCHECK, f"{name}: {test}"
        flags = _flags(test[2:])
        if "--plaintext" in flags:  # Flower's own gRPC health server, plaintext by design
            own = _flags(_argv(service)).get("--health-server-address")
            assert flags["--target"] == own, f"{name} checks a port that is not its health port"
        else:
            listen = _flags(_serve_argv(service) or _argv(service))["--listen"]
            assert flags["--pki"] == "/pki"
            assert flags["--target"] == f"127.0.0.1:{_split_host_port(listen)[1]}"


def _volume_at(service: Obj, path: str) -> str | None:
    for volume in service.get("volumes", []):
        source, _, rest = str(volume).partition(":")
        if rest.split(":")[0] == path:
            return source
    return None


def test_compose_nodes_import_before_serving() -> None:
    services = _services()
    for name, service in _node_services().items():
        depends = service.get("depends_on", {})
        importers = [
            d
            for d, c in depends.items()
            if c.get("condition") == "service_completed_successfully"
            and "node import" in " ".join(_argv(services[d]))
        ]
        assert len(importers) == 1, f"{name} serves before any import"
        importer = services[importers[0]]
        assert importer.get("restart") == "no", "a one-shot"
        argv = _argv(importer)
        flags = _flags(argv[argv.index("import") :])
        assert flags["--channel"] == name
        assert flags["--data-dir"] == "/data"
        assert _volume_at(importer, "/data") == _volume_at(service, "/data") is not None
        assert depends["coordinator"]["condition"] == "service_healthy"


def test_compose_feature_nodes_run_their_training_participant() -> None:
    """The coordinator runs the standing SuperLink itself, reached as `coordinator:9092` (the
    name its certificate carries); each feature node's own `node serve` starts its SuperNode,
    so no service runs Flower's processes apart from the party that owns them."""
    services = _services()
    assert not [
        s for s in services.values() if _argv(s)[:1] in (["flower-superlink"], ["flower-supernode"])
    ]
    argv = _argv(services["coordinator"])
    flags = _flags(argv[argv.index("serve") :])
    assert _split_host_port(flags["--fleet-listen"])[1] == 9092
    assert flags["--fleet-advertise"] == "coordinator:9092"
    for name, service in _node_services().items():
        serve = _serve_argv(service) or []
        assert "--no-train" not in serve, f"{name} would not train"
        assert _flags(serve)["--coordinator"] == "coordinator:50051"


# -- the image -------------------------------------------------------------------------------


def _dockerfile_runs() -> list[str]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip()[4:] for line in text.splitlines() if line.strip().startswith("RUN ")]


def test_the_image_installs_the_cpu_torch_explicitly_first() -> None:
    runs = _dockerfile_runs()
    torch = [i for i, r in enumerate(runs) if TORCH in shlex.split(r)]
    assert torch, f"the Dockerfile never installs {TORCH}"
    words = shlex.split(runs[torch[0]])
    assert words[words.index("--index-url") + 1] == CPU_INDEX
    project = [i for i, r in enumerate(runs) if "-c constraints.txt ." in r]
    assert project and torch[0] < project[0], "torch before the project, so the pin is met"
    # the constraint the project install applies is the same build
    pins = (ROOT / "constraints.txt").read_text().splitlines()
    assert any(p.startswith(f"{TORCH}+cpu") or p == TORCH for p in pins)


def test_the_image_carries_the_probe() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert f"COPY deploy/healthcheck.py /usr/local/bin/{HEALTHCHECK}" in text
    assert re.search(r"^USER 10001$", text, re.M), "numeric, so runAsNonRoot can check it"


# -- the probe itself ------------------------------------------------------------------------


def test_the_probe_passes_over_mtls_where_plain_grpc_cannot(pki_dir: Path, tmp_path: Path) -> None:
    from accord.rpc.server import create_server
    from accord.rpc.tls import PartyCredentials

    server = create_server("127.0.0.1:0", PartyCredentials.load(pki_dir / "pay"), lambda _: [])
    target = f"127.0.0.1:{server.port}"

    def probe(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(DEPLOY / "healthcheck.py"), "--target", target, *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    try:
        assert probe("--pki", str(pki_dir / "pay")).returncode == 0
        plain = probe("--plaintext", "--timeout", "1")
        assert plain.returncode == 1 and "unhealthy" in plain.stderr
        not_ready = probe("--pki", str(pki_dir / "pay"), "--ready-file", str(tmp_path / "x"))
        assert not_ready.returncode == 1 and "not ready" in not_ready.stderr
        server.set_serving(False)
        assert probe("--pki", str(pki_dir / "pay")).returncode == 1
    finally:
        server.stop(grace=0)
