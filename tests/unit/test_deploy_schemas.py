"""docker-compose.yml and deploy/k8s/ against their published JSON schemas, offline.

Compose: the Compose Specification's schema.json as check-jsonschema vendors it
(``vendor/compose-spec.json``), validated with jsonschema. Kubernetes: the schemas
kubernetes-validate bundles, strict (unknown fields are errors), for every document
of every manifest.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from pipeline import config

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
# The oldest Kubernetes still supported upstream when written, and the newest bundled.
K8S_VERSIONS = ("1.32.0", "1.37.0")


def compose_schema() -> dict[str, Any]:
    text = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(text.read_text(encoding="utf-8"))
    assert isinstance(schema, dict)
    return schema


def test_compose_file_follows_the_compose_specification() -> None:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    jsonschema.validate(data, compose_schema())


def test_the_compose_schema_catches_a_broken_service() -> None:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    data["services"]["grafana"]["restart_policy"] = "always"  # not a service key
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, compose_schema())


def manifests() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                out.append((f"{path.name}:{document['kind']}/{document['metadata']['name']}",
                            document))  # fmt: skip
    return out


def test_every_manifest_validates_against_the_kubernetes_schemas() -> None:
    found = manifests()
    kinds = {doc["kind"] for _, doc in found}
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "Namespace"} <= kinds
    for name, document in found:
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(document, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                raise AssertionError(
                    f"{name} ({version}): {exc.message} at {list(exc.path)}"
                ) from None


def test_the_kubernetes_schemas_catch_a_wrong_probe() -> None:
    worker = next(
        doc for name, doc in manifests() if name == "worker.yaml:Deployment/costflow-worker"
    )
    worker["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, K8S_VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk


def deployments() -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in manifests() if doc["kind"] == "Deployment"}


def _env(container: dict[str, Any]) -> dict[str, Any]:
    shared = next(doc for _, doc in manifests() if doc["metadata"]["name"] == "costflow-env")
    values: dict[str, Any] = dict(shared["data"])
    for item in container.get("env", []):
        values[item["name"]] = item.get("value", item.get("valueFrom"))
    return values


def test_stages_commands_probes_and_ports_agree_with_their_settings() -> None:
    from tests.unit.test_deploy import known_variables

    known = known_variables()
    commands = {
        "costflow-worker": (["worker"], "COSTFLOW_WORKER_METRICS_PORT"),
        "costflow-sink": (["sink"], "COSTFLOW_SINK_METRICS_PORT"),
        "costflow-collector": (["ingest", "http"], "COSTFLOW_INGEST_HTTP_PORT"),
        "costflow-ingest-otlp": (["ingest", "otlp"], "COSTFLOW_INGEST_METRICS_PORT"),
        "costflow-alerts": (
            ["alerts", "run", "/etc/costflow/alerts/rules.yaml"],
            "COSTFLOW_ALERTS_METRICS_PORT",
        ),
    }
    assert set(deployments()) == set(commands)
    for name, deployment in deployments().items():
        args, port_setting = commands[name]
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"] == args
        assert container["resources"]["requests"] and container["resources"]["limits"]
        env = _env(container)
        for variable in env:
            assert variable in known or variable == "COSTFLOW_CLICKHOUSE_PASSWORD", variable
        port = int(env[port_setting])
        (declared,) = container["ports"]
        assert declared["containerPort"] == port
        assert container["livenessProbe"]["httpGet"] == {
            "path": "/healthz",
            "port": declared["name"],
        }
        assert container["readinessProbe"]["httpGet"] == {
            "path": "/readyz",
            "port": declared["name"],
        }
        host = next((v for k, v in env.items() if k.endswith("_HOST")), None)
        assert host == "0.0.0.0", f"{name} must listen beyond loopback to be probed"


def test_secrets_are_referenced_never_written() -> None:
    assert all(doc["kind"] != "Secret" for _, doc in manifests())
    text = "".join(p.read_text() for p in K8S.glob("*.yaml"))
    references = re.findall(r"secretKeyRef: \{name: (\S+), key: (\S+)\}", text)
    assert {name for name, _ in references} == {"costflow-clickhouse"}
    assert "secretName: costflow-ingest" in text
    for _, doc in manifests():
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "costflow-env":
            assert not any("PASSWORD" in k or "TOKEN" in k for k in doc["data"])


def test_the_worker_does_not_outnumber_the_partitions() -> None:
    worker = deployments()["costflow-worker"]
    partitions = int(_env(worker["spec"]["template"]["spec"]["containers"][0])[
        "COSTFLOW_TOPIC_PARTITIONS"])  # fmt: skip
    assert 1 <= worker["spec"]["replicas"] <= partitions
    assert config.TopicSettings.model_config.get("env_prefix") == "COSTFLOW_TOPIC_"


def test_configmaps_are_what_the_script_writes_and_the_book_loads(tmp_path: Path) -> None:
    import importlib.util

    from pipeline.pricing.book import load_price_book

    spec = importlib.util.spec_from_file_location("k8s_configmaps", K8S / "configmaps.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (K8S / "configmaps.yaml").read_text(encoding="utf-8") == module.render(), (
        "run .venv/bin/python deploy/k8s/configmaps.py"
    )
    maps = {doc["metadata"]["name"]: doc for _, doc in manifests() if doc["kind"] == "ConfigMap"}
    # The mounted book, with the image's /app/pricing pointed at this checkout's copy.
    book_dir = tmp_path / "price-book"
    book_dir.mkdir()
    for name, text in maps["costflow-price-book"]["data"].items():
        (book_dir / name).write_text(text.replace(module.IMAGE_BOOK, str(ROOT / "pricing/default")))
    mounted = load_price_book(book_dir)
    shipped = load_price_book(ROOT / "pricing" / "default")
    assert (mounted.name, mounted.version) == (shipped.name, shipped.version)
    assert len(mounted.entries) == len(shipped.entries) > 100
    rules = maps["costflow-alert-rules"]["data"]["rules.yaml"]
    assert rules == (ROOT / "deploy" / "alerts" / "rules.yaml").read_text(encoding="utf-8")
