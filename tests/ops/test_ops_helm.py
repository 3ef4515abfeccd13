"""The Helm chart, rendered by the real Helm engine (the one embedded in the helm-python-sdk wheel):
lint, Kubernetes schema validation of every manifest (kubernetes-validate, strict), the settings it
passes to forgetd, the refusals it makes, and the monitoring resources it ships."""

from __future__ import annotations

import base64
import json
import os
from functools import cache
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from helm_python.chart import Chart, lint
from helm_python.errors import HelmError

from forgetd.settings import Settings
from tests.ops.crd_schemas import SCHEMAS
from tests.ops.tools import ALERTS, CHART, DASHBOARD

RELEASE, NAMESPACE = "rel", "ml"
KUBE_VERSIONS = ("1.30", kubernetes_validate.latest_version())
VALUE_FILES = {"default": None, "production": "ci/production-values.yaml", "trial": "ci/trial-values.yaml",
               "s3": "ci/s3-values.yaml"}
REQUIRED_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                   "app.kubernetes.io/managed-by", "helm.sh/chart")
FORGETD_COMPONENTS = ("api", "admission", "worker", "serve")
CHART_SET = {  # settings the chart sets itself (values.yaml lists them), not through `config`
    "mode", "data_dir", "store_dir", "store_url", "store_endpoint_url", "redis_url", "broker_url", "api_token",
    "admin_token", "master_key",
    "hmac_key", "previous_master_keys", "api_host", "serve_host", "api_port", "serve_port", "worker_metrics_port",
    "serving_url", "vllm_url", "vllm_api_key",
}


def _values(name: str) -> dict[str, Any]:
    path = VALUE_FILES[name]
    return yaml.safe_load((CHART / path).read_text()) if path else {}


def _render(values: dict[str, Any]) -> dict[str, str]:
    return Chart.load(CHART).render(values=values, name=RELEASE, namespace=NAMESPACE)


def _documents(rendered: dict[str, str]) -> tuple[dict[str, Any], ...]:
    return tuple(doc for path, text in sorted(rendered.items()) if not path.endswith("NOTES.txt")
                 for doc in yaml.safe_load_all(text) if doc)


@cache
def _manifests(name: str) -> tuple[dict[str, Any], ...]:
    return _documents(_render(_values(name)))


def _one(name: str, kind: str, component: str | None = None) -> dict[str, Any]:
    found = [d for d in _manifests(name) if d["kind"] == kind and (
        component is None or d["metadata"]["labels"].get("app.kubernetes.io/component") == component)]
    assert len(found) == 1, f"{name}: expected one {kind} {component or ''}, found {len(found)}"
    return found[0]


def _container(name: str, component: str) -> dict[str, Any]:
    (container,) = _one(name, "Deployment", component)["spec"]["template"]["spec"]["containers"]
    return container


# -- lint and schemas ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VALUE_FILES)
def test_helm_lint_finds_nothing_above_info(name: str) -> None:
    result = lint(CHART, values=_values(name), strict=True, namespace=NAMESPACE)
    problems = [m for m in result["messages"] if m["severity"] > 1] + list(result["errors"])
    assert not problems, problems


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("name", VALUE_FILES)
def test_every_manifest_passes_strict_kubernetes_schema_validation(name: str, kube_version: str) -> None:
    manifests = _manifests(name)
    assert manifests
    for doc in manifests:
        where = f"{name}: {doc['kind']} {doc['metadata']['name']}"
        if doc["kind"] in SCHEMAS:
            try:
                jsonschema.validate(doc, SCHEMAS[doc["kind"]])
            except jsonschema.ValidationError as e:
                pytest.fail(f"{where}: {e.message} at {list(e.absolute_path)}")
            continue
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{where} (Kubernetes {kube_version}): {e.message} at {list(e.path)}")


def test_the_production_values_render_every_optional_resource() -> None:
    kinds = {doc["kind"] for doc in _manifests("production")}
    assert {"Ingress", "PodDisruptionBudget", "PodMonitor", "ServiceMonitor", "PrometheusRule"} <= kinds
    dashboards = [d for d in _manifests("production") if d["kind"] == "ConfigMap" and "forgetd.json" in d["data"]]
    assert len(dashboards) == 1


def test_the_production_values_set_every_setting() -> None:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["config"]
    assert set(_values("production")["config"]) == set(defaults)


def test_the_crd_schemas_refuse_unknown_fields() -> None:
    monitor = next(d for d in _manifests("production") if d["kind"] == "PodMonitor")
    broken = json.loads(json.dumps(monitor))
    broken["spec"]["podMetricEndpoints"] = broken["spec"].pop("podMetricsEndpoints")  # a typical typo
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMAS["PodMonitor"])


@pytest.mark.parametrize("name", VALUE_FILES)
def test_every_resource_carries_the_standard_labels(name: str) -> None:
    for doc in _manifests(name):
        labels = doc["metadata"].get("labels", {})
        missing = [label for label in REQUIRED_LABELS if label not in labels]
        assert not missing, f"{doc['kind']} {doc['metadata']['name']} lacks {missing}"
        if doc["kind"] in ("Deployment", "StatefulSet"):
            pod_labels = doc["spec"]["template"]["metadata"]["labels"]
            assert "app.kubernetes.io/component" in pod_labels
            assert doc["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


# -- the processes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", VALUE_FILES)
def test_gpu_workers_never_overlap_and_get_their_gpu(name: str) -> None:
    values = _values(name)
    deployment = _one(name, "Deployment", "worker")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    config = _config(name)
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["terminationGracePeriodSeconds"] > float(config["FORGETD_SHUTDOWN_GRACE_S"])
    assert {"name": "REMAP_SIGTERM", "value": "SIGQUIT"} in container["env"]
    assert container["args"] == ["worker", "--queues", config["FORGETD_GPU_QUEUE_NAME"], "--no-beat"]
    gpus = values.get("worker", {}).get("gpus", 1)
    assert container["resources"].get("limits", {}).get("nvidia.com/gpu", 0) == gpus
    if gpus:
        assert any(t.get("key") == "nvidia.com/gpu" for t in pod["tolerations"])


def test_production_workers_land_on_gpu_nodes() -> None:
    pod = _one("production", "Deployment", "worker")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["runtimeClassName"] == "nvidia"
    assert _one("production", "Deployment", "worker")["spec"]["replicas"] == 4


@pytest.mark.parametrize("name", VALUE_FILES)
def test_one_admission_worker_runs_the_periodic_tasks(name: str) -> None:
    deployment = _one(name, "Deployment", "admission")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert container["args"] == ["worker", "--queues", _config(name)["FORGETD_QUEUE_NAME"], "--beat"]


@pytest.mark.parametrize("name", VALUE_FILES)
def test_the_api_is_probed_and_has_a_disruption_budget(name: str) -> None:
    container = _container(name, "api")
    assert container["args"] == ["api"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]
    service = _one(name, "Service", "api")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    if _values(name).get("api", {}).get("pdb", {}).get("enabled", True):
        _one(name, "PodDisruptionBudget", "api")


@pytest.mark.parametrize("name", VALUE_FILES)
def test_serving_waits_for_its_model_before_liveness(name: str) -> None:
    container = _container(name, "serve")
    assert container["args"] == ["serve"]
    assert container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"] >= 300
    _one(name, "Service", "serve")


@pytest.mark.parametrize("name", VALUE_FILES)
def test_pods_run_as_the_images_non_root_user_on_a_read_only_root(name: str) -> None:
    for component in FORGETD_COMPONENTS:
        pod = _one(name, "Deployment", component)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert {"/data", "/tmp"} <= mounts


# -- settings --------------------------------------------------------------------------------------


def _config(name: str) -> dict[str, str]:
    configmaps = [d for d in _manifests(name) if d["kind"] == "ConfigMap" and "FORGETD_MODEL" in d.get("data", {})]
    assert len(configmaps) == 1
    return dict(configmaps[0]["data"])


def _container_settings(name: str, component: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a forgetd container would build from what the chart gives it."""
    environment = _config(name)
    secrets = [d for d in _manifests(name) if d["kind"] == "Secret" and "FORGETD_MASTER_KEY" in d.get("data", {})]
    if secrets:  # generated by the chart
        environment |= {k: base64.b64decode(v).decode() for k, v in secrets[0]["data"].items()}
    else:  # an existing Secret: what an operator would put there
        key = base64.b64encode(os.urandom(32)).decode()
        environment |= {"FORGETD_API_TOKEN": "t" * 32, "FORGETD_ADMIN_TOKEN": "a" * 32,
                        "FORGETD_MASTER_KEY": key, "FORGETD_HMAC_KEY": key}
    for variable in _container(name, component)["env"]:
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
        elif variable["name"] in ("FORGETD_REDIS_URL", "FORGETD_BROKER_URL"):
            environment[variable["name"]] = "redis://:secret@redis:6379/0"
    for variable in list(os.environ):
        if variable.startswith("FORGETD_"):
            monkeypatch.delenv(variable)
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    return Settings(_env_file=None)


@pytest.mark.parametrize("name", VALUE_FILES)
@pytest.mark.parametrize("component", FORGETD_COMPONENTS)
def test_each_container_gets_valid_production_settings(name: str, component: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _container_settings(name, component, monkeypatch)
    container = _container(name, component)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    assert settings.mode == "production"
    assert len(settings.secret_bytes("master_key")) == 32 and len(settings.secret_bytes("hmac_key")) == 32
    store = _values(name).get("store", {})
    if store.get("type") == "s3":
        s3 = store["s3"]
        assert settings.store_url == f"s3://{s3['bucket']}/{s3['prefix']}"
        assert settings.store_endpoint_url == s3.get("endpoint", "")
    else:
        assert settings.store_url == ""
        assert str(settings.adapters_dir) == store.get("pvc", {}).get("mountPath", "/store")
    assert settings.api_host == settings.serve_host == "0.0.0.0"
    expected_port = {"api": settings.api_port, "serve": settings.serve_port}.get(component,
                                                                             settings.worker_metrics_port)
    assert expected_port in ports.values()


def test_values_yaml_documents_every_setting() -> None:
    values_text = (CHART / "values.yaml").read_text()
    undocumented = [name for name in Settings.model_fields if f"FORGETD_{name.upper()}" not in values_text]
    assert not undocumented, f"settings missing from helm/forgetd/values.yaml: {undocumented}"


def test_config_keys_are_the_settings_the_chart_does_not_set_itself() -> None:
    config = yaml.safe_load((CHART / "values.yaml").read_text())["config"]
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["config"]["properties"]
    assert set(config) == set(Settings.model_fields) - CHART_SET, "values.yaml config and Settings differ"
    assert set(schema) == set(config), "values.schema.json config and values.yaml config differ"


@pytest.mark.parametrize("name", VALUE_FILES)
def test_the_store_is_the_claim_or_the_bucket_never_both(name: str) -> None:
    s3 = _values(name).get("store", {}).get("type") == "s3"
    claims = [d for d in _manifests(name) if d["kind"] == "PersistentVolumeClaim"]
    assert (not claims) if s3 else claims
    for component in FORGETD_COMPONENTS:
        pod = _one(name, "Deployment", component)["spec"]["template"]["spec"]
        env = {v["name"]: v for v in pod["containers"][0]["env"]}
        assert ("store" in {v["name"] for v in pod["volumes"]}) is not s3
        assert ("FORGETD_STORE_DIR" in env) is not s3
        assert ("FORGETD_STORE_URL" in env) is s3
        if s3:  # the access keys come from the operator's Secret, by reference, never as values
            for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                assert env[variable]["valueFrom"]["secretKeyRef"] == {"name": "forgetd-s3", "key": variable}
    assert not any(key.startswith("AWS_") for key in _config(name))


def test_an_s3_store_without_a_prefix_is_the_bucket_top(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = _render({"store": {"type": "s3", "s3": {"bucket": "adapters", "prefix": ""}}})
    docs = [d for d in _documents(rendered) if d["kind"] == "Deployment"]
    env = {v["name"]: v.get("value") for v in docs[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FORGETD_STORE_URL"] == "s3://adapters"
    assert "AWS_ACCESS_KEY_ID" not in env  # no Secret: the pod's own identity (IRSA, instance role)
    monkeypatch.setenv("FORGETD_STORE_URL", env["FORGETD_STORE_URL"])
    assert Settings(_env_file=None).store_url == "s3://adapters"


def test_generated_secrets_are_kept_on_uninstall() -> None:
    secret = _one("default", "Secret")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert set(secret["data"]) == {"FORGETD_API_TOKEN", "FORGETD_ADMIN_TOKEN", "FORGETD_MASTER_KEY",
                                   "FORGETD_HMAC_KEY"}


def test_the_in_chart_redis_persists_and_never_evicts() -> None:
    conf = next(d for d in _manifests("trial") if d["kind"] == "ConfigMap" and "redis.conf" in d["data"])
    lines = conf["data"]["redis.conf"].splitlines()
    assert "maxmemory-policy noeviction" in lines and "appendonly yes" in lines
    statefulset = _one("trial", "StatefulSet", "redis")
    assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    env = {v["name"]: v for v in _container("trial", "api")["env"]}
    assert env["FORGETD_REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == statefulset["metadata"]["name"]


def test_only_the_gpu_workers_deliver_to_the_serving_service_and_vllm() -> None:
    env = {v["name"]: v for v in _container("production", "worker")["env"]}
    assert env["FORGETD_SERVING_URL"]["value"] == f"http://{RELEASE}-forgetd-serve.{NAMESPACE}.svc:8001"
    assert env["FORGETD_VLLM_URL"]["value"] == "http://vllm.ml.svc:8000"
    assert env["FORGETD_VLLM_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "vllm-api-key", "key": "api-key"}
    for component in ("api", "admission", "serve"):
        names = {v["name"] for v in _container("production", component)["env"]}
        assert not names & {"FORGETD_SERVING_URL", "FORGETD_VLLM_URL", "FORGETD_VLLM_API_KEY"}, component
    default_env = {v["name"] for v in _container("default", "worker")["env"]}
    assert "FORGETD_SERVING_URL" in default_env and "FORGETD_VLLM_URL" not in default_env


def test_the_resolver_folder_with_an_s3_store_renders() -> None:
    values = {"serving": {"vllm": {"url": "http://vllm:8000"}}, "store": {"type": "s3", "s3": {"bucket": "adapters"}},
              "config": {"vllm_resolver_dir": "/resolver", "vllm_served_base": "base"}}
    worker = next(d for d in _documents(_render(values)) if d["kind"] == "Deployment"
                  and d["metadata"]["labels"]["app.kubernetes.io/component"] == "worker")
    env = {v["name"]: v.get("value") for v in worker["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FORGETD_VLLM_URL"] == "http://vllm:8000"


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "message"), [
    ({"store": {"type": "s3"}}, "store.type=s3 needs store.s3.bucket"),
    ({"store": {"type": "s3", "s3": {"bucket": "Not_A_Bucket"}}}, "/store/s3/bucket"),
    ({"config": {"vllm_resolver_dir": "/store/vllm"}}, "config.vllm_resolver_dir needs config.vllm_served_base"),
    ({"serving": {"vllm": {"url": "http://vllm:8000"}}, "store": {"type": "s3", "s3": {"bucket": "adapters"}}},
     "vLLM reads lora_path from its own filesystem"),
    ({"config": {"vllm_max_lora_rank": 48}}, "/config/vllm_max_lora_rank"),
    ({"config": {"shutdown_grace_s": 300}}, "must be longer than config.shutdown_grace_s"),
    ({"redis": {"external": {"existingSecret": "", "url": ""}}}, "redis: set redis.external.existingSecret"),
    ({"worker": {"gpus": 2}}, "/worker/gpus"),
    ({"config": {"lora_rank": 12}}, "/config/lora_rank"),
    ({"config": {"not_a_setting": 1}}, "not_a_setting"),
    ({"store": {"type": "nfs"}}, "/store/type"),
])
def test_the_chart_refuses_what_cannot_work(values: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmError) as error:
        _render(values)
    assert message in str(error.value)


# -- monitoring ------------------------------------------------------------------------------------


def test_the_prometheus_rule_is_ops_alerts_yaml() -> None:
    rule = _one("production", "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(ALERTS.read_text())


def test_the_dashboard_configmap_is_ops_grafana_json_labelled_for_the_sidecar() -> None:
    configmap = next(d for d in _manifests("production") if d["kind"] == "ConfigMap" and "forgetd.json" in d["data"])
    assert json.loads(configmap["data"]["forgetd.json"]) == json.loads(DASHBOARD.read_text())
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == "monitoring"


def test_monitors_scrape_every_component_under_the_job_names_the_alerts_use() -> None:
    pod_monitor, service_monitor = _one("production", "PodMonitor"), _one("production", "ServiceMonitor")
    assert pod_monitor["spec"]["selector"]["matchExpressions"][0]["values"] == ["admission", "worker"]
    assert service_monitor["spec"]["selector"]["matchExpressions"][0]["values"] == ["api", "serve"]
    for endpoint in pod_monitor["spec"]["podMetricsEndpoints"] + service_monitor["spec"]["endpoints"]:
        (relabel,) = endpoint["relabelings"]
        assert relabel["targetLabel"] == "job" and relabel["replacement"] == "forgetd-$1"
    for component in ("admission", "worker"):
        assert "metrics" in {p["name"] for p in _container("production", component)["ports"]}
    for component in ("api", "serve"):
        assert _one("production", "Service", component)["spec"]["ports"][0]["name"] == "http"
    jobs = {f"forgetd-{c}" for c in FORGETD_COMPONENTS}
    assert jobs >= {"forgetd-worker", "forgetd-admission"}
    assert "forgetd-(worker|admission)" in ALERTS.read_text()
