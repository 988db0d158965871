"""deploy/: every manifest and the Dockerfile agree with the app and the CLI they deploy.

Every YAML file under deploy/ is read (a new one is checked, or fails as unknown). Probe
paths are requested from a real app built with the container's own FLASKSERVE_* settings;
the command a container runs is parsed by the real click command, so the port it binds,
the port the manifest declares and the port each probe knocks on must all agree.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml
from flask import Flask
from werkzeug.exceptions import HTTPException

from flaskserve.app import create_app
from flaskserve.cli import main
from flaskserve.serving import gunicorn as server
from flaskserve.settings import ENV_PREFIX, Settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
API_VERSIONS = {
    "Deployment": "apps/v1",
    "Service": "v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "PodDisruptionBudget": "policy/v1",
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
    "InferenceService": "serving.kserve.io/v1beta1",
}
REQUIRED_KINDS = {"Deployment", "Service", "HorizontalPodAutoscaler", "InferenceService"}
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
SECRET_PLACEHOLDER = "s" * 32  # stands for a secretKeyRef: valid as an API key or admin token


@dataclass(frozen=True)
class Manifest:
    path: Path
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body.get("kind"))

    @property
    def name(self) -> str:
        return str(self.body.get("metadata", {}).get("name", ""))

    def __str__(self) -> str:
        name = f"/{self.name}" if self.name else ""
        return f"{self.path.relative_to(DEPLOY)}:{self.kind}{name}"


@dataclass(frozen=True)
class Pod:
    manifest: Manifest
    spec: dict[str, Any]  # a pod spec, or KServe's predictor (a pod spec plus its own fields)
    labels: dict[str, str]
    annotations: dict[str, str]


@dataclass(frozen=True)
class Container:
    pod: Pod
    body: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.pod.manifest}:{self.body.get('name')}"


def _load_manifests() -> list[Manifest]:
    paths = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    manifests = []
    for path in paths:
        with path.open(encoding="utf-8") as f:
            manifests += [Manifest(path, body) for body in yaml.safe_load_all(f) if body]
    return manifests


def _pod(manifest: Manifest) -> Pod | None:
    if manifest.kind == "Deployment":
        template = manifest.body["spec"]["template"]
        metadata = template.get("metadata", {})
        return Pod(
            manifest, template["spec"], metadata.get("labels", {}), metadata.get("annotations", {})
        )
    if manifest.kind == "InferenceService":
        metadata = manifest.body["metadata"]
        spec = manifest.body["spec"]["predictor"]
        return Pod(manifest, spec, metadata.get("labels", {}), metadata.get("annotations", {}))
    return None


MANIFESTS = _load_manifests()
PODS = [pod for pod in map(_pod, MANIFESTS) if pod is not None]
CONTAINERS = [Container(pod, body) for pod in PODS for body in pod.spec.get("containers", [])]


def _of_kind(kind: str) -> list[Manifest]:
    return [m for m in MANIFESTS if m.kind == kind]


# --- the Dockerfile -------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str


def _read_dockerfile() -> list[Instruction]:
    instructions, pending = [], ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):  # comments may also sit inside a continued line
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, value = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), value.strip()))
        pending = ""
    return instructions


def _exec_form(instruction: Instruction | None, text: str | None = None) -> list[str]:
    assert instruction is not None, "the final stage needs this instruction"
    try:
        argv = json.loads(text if text is not None else instruction.value)
    except json.JSONDecodeError:
        argv = None
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), (
        f"{instruction.keyword} {instruction.value}: use the exec form (a JSON list), so that"
        " no shell stands between docker and the process that must get SIGTERM"
    )
    return argv


@dataclass(frozen=True)
class Image:
    instructions: list[Instruction]  # the whole file
    final: dict[str, Instruction]  # the final stage's last instruction of each keyword

    @property
    def argv(self) -> list[str]:
        entrypoint = _exec_form(self.final["ENTRYPOINT"]) if "ENTRYPOINT" in self.final else []
        return entrypoint + _exec_form(self.final.get("CMD"))


@pytest.fixture(scope="module")
def image() -> Image:
    instructions = _read_dockerfile()
    starts = [i for i, ins in enumerate(instructions) if ins.keyword == "FROM"]
    assert starts, "deploy/Dockerfile has no FROM"
    final = {ins.keyword: ins for ins in instructions[starts[-1] :]}
    return Image(instructions, final)


# --- the app, as each container configures it -----------------------------------------------

AppFor = Callable[[dict[str, str]], Flask]


@pytest.fixture(scope="module")
def app_for(model_dir: Path) -> AppFor:
    """An app on the iris artifact with the given FLASKSERVE_* variables, built once each."""
    apps: dict[tuple[tuple[str, str], ...], Flask] = {}

    def build(environ: dict[str, str]) -> Flask:
        key = tuple(sorted(environ.items()))
        if key not in apps:
            settings = Settings.from_env(environ, model_dir=model_dir, poll_seconds=0)
            apps[key] = create_app(settings)
        return apps[key]

    return build


@pytest.fixture(scope="module")
def app_without_model(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    missing = tmp_path_factory.mktemp("deploy") / "no-model-yet"
    return create_app(Settings(model_dir=missing, poll_seconds=0))


def _environ(container: Container) -> dict[str, str]:
    environ = {}
    for variable in container.body.get("env", []):
        value = variable.get("value")
        environ[variable["name"]] = SECRET_PLACEHOLDER if value is None else str(value)
    return environ


def _assert_served(app: Flask, path: str, where: str) -> None:
    """*path* is one of the app's GET routes, and answers 200."""
    route = urlsplit(path).path
    try:
        app.url_map.bind("localhost").match(route, method="GET")
    except HTTPException as e:
        pytest.fail(f"{where}: GET {path} matches no route of the app ({e.code})")
    response = app.test_client().get(path)
    assert response.status_code == 200, f"{where}: GET {path} -> {response.status_code}"


def _serving_params(argv: list[str], where: str) -> dict[str, Any]:
    """Parse *argv* with the real click command: the options it would really run with."""
    assert argv[:1] == ["flaskserve"] and len(argv) > 1, f"{where}: {argv} is not flaskserve"
    name, args = argv[1], argv[2:]
    command = main.commands.get(name)
    real = ", ".join(sorted(n for n, c in main.commands.items() if not c.hidden))
    assert command is not None and not command.hidden, f"{where}: no command {name!r} ({real})"
    assert name in ("serve", "quickstart"), f"{where}: flaskserve {name} serves nothing"
    try:
        with command.make_context(f"flaskserve {name}", list(args)) as ctx:
            params = dict(ctx.params)
    except click.ClickException as e:
        pytest.fail(f"{where}: flaskserve {name} {shlex.join(args)}: {e.format_message()}")
    assert not params.get("dev"), f"{where}: --dev runs Flask's development server"
    host = params["host"]
    assert not server.is_loopback(host), f"{where}: --host {host} is unreachable from outside"
    return params


def _container_argv(container: Container, image: Image) -> list[str]:
    """Kubernetes' rule: command replaces ENTRYPOINT (and drops CMD), args replace CMD."""
    body = container.body
    entrypoint = _exec_form(image.final["ENTRYPOINT"]) if "ENTRYPOINT" in image.final else []
    command = body.get("command", entrypoint)
    default_args = [] if "command" in body else _exec_form(image.final.get("CMD"))
    return [*command, *body.get("args", default_args)]


def _container_ports(container: Container) -> dict[str | int, int]:
    """Each declared port, by number and by name."""
    ports: dict[str | int, int] = {}
    for port in container.body.get("ports", []):
        ports[port["containerPort"]] = port["containerPort"]
        if port.get("name"):
            ports[port["name"]] = port["containerPort"]
    return ports


# --- every file -----------------------------------------------------------------------------


def test_deploy_has_the_manifests_and_the_dockerfile() -> None:
    assert DOCKERFILE.is_file()
    missing = REQUIRED_KINDS - {m.kind for m in MANIFESTS}
    assert not missing, f"no manifest of kind {sorted(missing)} under deploy/"
    assert CONTAINERS


@pytest.mark.parametrize("manifest", MANIFESTS, ids=str)
def test_every_manifest_is_a_kind_this_test_checks(manifest: Manifest) -> None:
    assert manifest.kind in API_VERSIONS, f"{manifest}: add checks for this kind to this test"
    assert manifest.body.get("apiVersion") == API_VERSIONS[manifest.kind], manifest
    assert manifest.kind == "Kustomization" or manifest.name, f"{manifest}: metadata.name"


# --- containers -----------------------------------------------------------------------------


@pytest.mark.parametrize("container", CONTAINERS, ids=str)
def test_container_declares_the_port_its_command_binds(container: Container, image: Image) -> None:
    reference = container.body.get("image", "")
    repository = reference.split("@")[0].rsplit("/", 1)[-1].split(":")[0]
    assert repository == "flaskserve", f"{container}: runs {reference!r}, not deploy/Dockerfile"
    params = _serving_params(_container_argv(container, image), str(container))
    declared = set(_container_ports(container).values())
    assert declared == {params["port"]}, f"{container}: binds {params['port']}, declares {declared}"


@pytest.mark.parametrize("container", CONTAINERS, ids=str)
def test_probes_knock_on_served_paths_and_the_container_port(
    container: Container, image: Image, app_for: AppFor
) -> None:
    assert "livenessProbe" in container.body and "readinessProbe" in container.body, container
    params = _serving_params(_container_argv(container, image), str(container))
    ports = _container_ports(container)
    app = app_for(_environ(container))
    for kind in PROBES:
        if kind not in container.body:
            continue
        where = f"{container}:{kind}"
        http_get = container.body[kind].get("httpGet")
        assert http_get is not None, f"{where}: probe over HTTP (httpGet)"
        port = http_get.get("port")
        assert port in ports, (
            f"{where}: port {port!r} is not a container port {sorted(map(str, ports))}"
        )
        assert ports[port] == params["port"], f"{where}: the server binds {params['port']}"
        _assert_served(app, http_get["path"], where)


@pytest.mark.parametrize("container", CONTAINERS, ids=str)
def test_liveness_ignores_the_model_and_readiness_waits_for_it(
    container: Container, app_without_model: Flask
) -> None:
    client = app_without_model.test_client()
    liveness = container.body["livenessProbe"]["httpGet"]["path"]
    readiness = container.body["readinessProbe"]["httpGet"]["path"]
    assert client.get(liveness).status_code == 200, f"{container}: {liveness} needs a model"
    assert client.get(readiness).status_code == 503, f"{container}: {readiness} ready without one"


@pytest.mark.parametrize("container", CONTAINERS, ids=str)
def test_container_settings_are_real_and_parse(container: Container) -> None:
    known = {ENV_PREFIX + field.name.upper() for field in fields(Settings)}
    environ = _environ(container)
    unknown = {name for name in environ if name.startswith(ENV_PREFIX)} - known
    assert not unknown, f"{container}: {sorted(unknown)} are not settings ({sorted(known)})"
    Settings.from_env(environ)  # raises SettingsError, naming the variable


@pytest.mark.parametrize("container", CONTAINERS, ids=str)
def test_container_runs_as_non_root(container: Container) -> None:
    context = {
        **container.pod.spec.get("securityContext", {}),
        **container.body.get("securityContext", {}),
    }
    assert context.get("runAsNonRoot") is True, f"{container}: runAsNonRoot"
    assert context.get("runAsUser", 1) != 0, f"{container}: runAsUser 0 is root"
    assert container.body.get("securityContext", {}).get("allowPrivilegeEscalation") is False


_UNITS = {
    "": 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
}


def _quantity(value: object) -> float:
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match is not None and match[2] in _UNITS, f"{value!r} is not a quantity"
    return float(match[1]) * _UNITS[match[2]]


@pytest.mark.parametrize("container", CONTAINERS, ids=str)
def test_resources_are_bounded_and_size_the_workers(container: Container, image: Image) -> None:
    resources = container.body.get("resources", {})
    requests, limits = resources.get("requests", {}), resources.get("limits", {})
    for name in ("cpu", "memory"):
        assert name in requests and name in limits, f"{container}: {name} request and limit"
        assert _quantity(requests[name]) <= _quantity(limits[name]), f"{container}: {name}"
    # inside a container os.cpu_count() sees the node's cores, so the default is wrong there
    workers = _serving_params(_container_argv(container, image), str(container))["workers"]
    assert workers is not None, f"{container}: pass --workers to match the CPU limit"
    assert workers <= max(_quantity(limits["cpu"]), 1), f"{container}: {workers} workers"


# --- pods and the objects that point at them ------------------------------------------------


@pytest.fixture()
def graceful_timeout(monkeypatch: pytest.MonkeyPatch) -> int:
    """gunicorn's graceful_timeout as ``flaskserve serve`` really configures it."""
    options: dict[str, Any] = {}

    class Recorder:
        def __init__(self, settings: Settings, given: dict[str, Any]) -> None:
            options.update(given)

        def run(self) -> None:
            pass

    monkeypatch.setattr(server, "GunicornServer", Recorder)
    server.run_gunicorn(Settings(), host="0.0.0.0", port=8080, workers=1)
    return int(options["graceful_timeout"])


def _pre_stop_seconds(container: dict[str, Any]) -> int:
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in pre_stop:
        return int(pre_stop["sleep"]["seconds"])
    command = pre_stop.get("exec", {}).get("command", [])
    return int(command[1]) if command[:1] == ["sleep"] else 0


DEPLOYMENT_PODS = [pod for pod in PODS if pod.manifest.kind == "Deployment"]


@pytest.mark.parametrize("pod", DEPLOYMENT_PODS, ids=lambda pod: str(pod.manifest))
def test_termination_grace_outlasts_the_graceful_shutdown(pod: Pod, graceful_timeout: int) -> None:
    grace = pod.spec.get("terminationGracePeriodSeconds", 30)  # Kubernetes' default
    for body in pod.spec["containers"]:
        needed = _pre_stop_seconds(body) + graceful_timeout
        assert grace > needed, f"{pod.manifest}: {grace} s to stop, shutdown takes {needed} s"


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    match = selector.get("matchLabels", selector)  # a Service's selector is a plain map
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


@pytest.mark.parametrize("pod", DEPLOYMENT_PODS, ids=lambda pod: str(pod.manifest))
def test_deployment_selects_its_own_pods(pod: Pod) -> None:
    spec = pod.manifest.body["spec"]
    assert _selects(spec["selector"], pod.labels), f"{pod.manifest}: selector vs template labels"
    for spread in pod.spec.get("topologySpreadConstraints", []):
        assert _selects(spread["labelSelector"], pod.labels), f"{pod.manifest}: spread selector"


@pytest.mark.parametrize("pod", DEPLOYMENT_PODS, ids=lambda pod: str(pod.manifest))
def test_metrics_annotations_name_a_served_path_and_port(pod: Pod, app_for: AppFor) -> None:
    path, port = (pod.annotations.get(f"prometheus.io/{key}") for key in ("path", "port"))
    if path is None and port is None:
        pytest.skip("no prometheus.io annotations")
    containers = [Container(pod, body) for body in pod.spec["containers"]]
    ports = {p for container in containers for p in _container_ports(container).values()}
    assert port is None or int(port) in ports, f"{pod.manifest}: prometheus.io/port {port}"
    for container in containers:
        _assert_served(app_for(_environ(container)), path or "/metrics", f"{container}:metrics")


def _pods_in(manifest: Manifest) -> list[Pod]:
    """The Deployments' pods deployed beside *manifest* (the same directory)."""
    return [p for p in DEPLOYMENT_PODS if p.manifest.path.parent == manifest.path.parent]


@pytest.mark.parametrize("service", _of_kind("Service"), ids=str)
def test_service_reaches_a_container_port(service: Manifest) -> None:
    spec = service.body["spec"]
    assert spec.get("type", "ClusterIP") == "ClusterIP", service
    pods = [p for p in _pods_in(service) if _selects(spec["selector"], p.labels)]
    assert pods, f"{service}: selector {spec['selector']} matches no Deployment's pods"
    for pod in pods:
        ports: dict[str | int, int] = {}
        for body in pod.spec["containers"]:
            ports.update(_container_ports(Container(pod, body)))
        for port in spec["ports"]:
            target = port.get("targetPort", port["port"])
            assert target in ports, (
                f"{service}: targetPort {target!r} is not a port of {pod.manifest}"
            )


@pytest.mark.parametrize("hpa", _of_kind("HorizontalPodAutoscaler"), ids=str)
def test_hpa_scales_a_deployment_on_cpu(hpa: Manifest) -> None:
    spec = hpa.body["spec"]
    ref = spec["scaleTargetRef"]
    targets = [p for p in _pods_in(hpa) if p.manifest.name == ref["name"]]
    assert ref["kind"] == "Deployment" and ref["apiVersion"] == "apps/v1", hpa
    assert targets, f"{hpa}: no Deployment named {ref['name']!r} beside it"
    assert "replicas" not in targets[0].manifest.body["spec"], (
        "the HPA owns replicas; apply resets it"
    )
    assert 1 <= spec.get("minReplicas", 1) <= spec["maxReplicas"], hpa
    cpu = [m for m in spec["metrics"] if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
    assert cpu, f"{hpa}: scale on CPU"
    for body in targets[0].spec["containers"]:  # utilization is a share of the request
        assert "cpu" in body.get("resources", {}).get("requests", {}), f"{hpa}: {body['name']}"


@pytest.mark.parametrize("pdb", _of_kind("PodDisruptionBudget"), ids=str)
def test_disruption_budget_selects_pods(pdb: Manifest) -> None:
    selector = pdb.body["spec"]["selector"]
    assert any(_selects(selector, p.labels) for p in _pods_in(pdb)), f"{pdb}: selects no pods"


@pytest.mark.parametrize("kustomization", _of_kind("Kustomization"), ids=str)
def test_kustomization_applies_every_manifest_beside_it(kustomization: Manifest) -> None:
    folder = kustomization.path.parent
    beside = {p.name for p in folder.iterdir() if p.suffix in (".yaml", ".yml")}
    listed = set(kustomization.body.get("resources", []))
    assert listed == beside - {kustomization.path.name}, f"{kustomization}: resources"
    for entry in kustomization.body.get("images", []):
        assert entry["name"] == "flaskserve", f"{kustomization}: images names {entry['name']!r}"


@pytest.mark.parametrize("service", _of_kind("InferenceService"), ids=str)
def test_inference_service_is_a_v2_custom_predictor(service: Manifest) -> None:
    containers = service.body["spec"]["predictor"]["containers"]
    assert len(containers) == 1, f"{service}: one container, the predictor"
    container = containers[0]
    assert container["name"] == "kserve-container", service
    assert {"name": "PROTOCOL", "value": "v2"} in container.get("env", []), service
    assert len(container["ports"]) == 1, f"{service}: Knative routes to a single port"
    assert container["ports"][0].get("name", "") in ("", "http1", "h2c"), service
    readiness = container["readinessProbe"]["httpGet"]["path"]
    assert readiness == "/v2/health/ready", f"{service}: v2 readiness is /v2/health/ready"


# --- the Dockerfile -------------------------------------------------------------------------


def test_dockerfile_runs_as_a_numeric_non_root_user(image: Image) -> None:
    assert "USER" in image.final, "the final stage needs a USER"
    user = image.final["USER"].value.split(":")[0]
    assert user.isdigit(), f"USER {user}: runAsNonRoot can only verify a numeric user"
    assert int(user) != 0, "USER 0 is root"


def test_dockerfile_exposes_the_port_its_command_binds(image: Image) -> None:
    params = _serving_params(image.argv, "Dockerfile CMD")
    assert "EXPOSE" in image.final, "the final stage needs EXPOSE"
    exposed = {int(p.split("/")[0]) for p in image.final["EXPOSE"].value.split()}
    assert exposed == {params["port"]}, f"EXPOSE {exposed}, but the server binds {params['port']}"


def test_dockerfile_healthcheck_is_served_liveness(
    image: Image, app_for: AppFor, app_without_model: Flask
) -> None:
    healthcheck = image.final.get("HEALTHCHECK")
    assert healthcheck is not None, "the final stage needs a HEALTHCHECK"
    command = re.search(r"\bCMD\s+(.*)$", healthcheck.value)
    assert command is not None, healthcheck.value
    argv = _exec_form(healthcheck, command[1])
    assert argv[0].startswith("python"), f"{argv[0]}: slim images have no curl or wget"
    url = re.search(r"http://[^\s'\"]+", " ".join(argv))
    assert url is not None, f"no URL in {healthcheck.value}"
    address = urlsplit(url[0])
    params = _serving_params(image.argv, "Dockerfile CMD")
    assert address.port == params["port"], (
        f"HEALTHCHECK on {address.port}, server on {params['port']}"
    )
    _assert_served(app_for({}), address.path, "HEALTHCHECK")
    assert app_without_model.test_client().get(address.path).status_code == 200, "needs a model"


def test_dockerfile_bakes_in_the_model_it_serves(image: Image) -> None:
    served = str(_serving_params(image.argv, "Dockerfile CMD")["model_dir"])
    runs = [shlex.split(i.value) for i in image.instructions if i.keyword == "RUN"]
    trained = [argv for argv in runs if argv[:2] == ["flaskserve", "train"]]
    assert any(argv[argv.index("--out") + 1] == served for argv in trained if "--out" in argv), (
        f"no `flaskserve train --out {served}` in the Dockerfile"
    )
    copies = [shlex.split(i.value) for i in image.instructions if i.keyword == "COPY"]
    assert any(argv[-1].rstrip("/") == served for argv in copies), f"no COPY of a model to {served}"


def test_dockerfile_sets_only_real_settings(image: Image) -> None:
    known = {ENV_PREFIX + field.name.upper() for field in fields(Settings)}
    names = [
        pair.split("=", 1)[0]
        for ins in image.instructions
        if ins.keyword == "ENV"
        for pair in shlex.split(ins.value)
    ]
    assert names, "no ENV at all (PYTHONUNBUFFERED and friends)"
    unknown = {n for n in names if n.startswith(ENV_PREFIX)} - known
    assert not unknown, f"ENV {sorted(unknown)}: not settings"
