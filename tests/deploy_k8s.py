"""What tests/test_deploy.py checks k8s/ with: the manifests loaded, core kinds through
kubernetes-validate, KubeRay kinds through their CRDs' schemas (made strict about unknown fields),
and cross-checks between the documents (names, ports, addresses, images, commands, requests).
"""

from __future__ import annotations

import argparse
import functools
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import jsonschema
import kubernetes_validate
import yaml

from deploy_checks import (KAFKA_URL, LOOPBACK, REDIS_URL, ROOT, SCHEMAS, YAML_LOADER, host_port, image_problems,
                           kafka_kraft_problems, ray_version, redis_durability_problems, schema_errors,
                           simple_commands, vidscope_command)

K8S = ROOT / "k8s"
K8S_VERSION = "1.33.0"  # the Kubernetes release the core kinds are validated against
NODE_CPU, NODE_MEMORY_GIB = 7.5, 28.0  # allocatable on one node of the pool kustomization.yaml names


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S.iterdir() if p.suffix in (".yaml", ".yml") and p.name != "kustomization.yaml")


def k8s_documents() -> list[tuple[str, dict]]:
    return [(path.name, doc) for path in k8s_files()
            for doc in yaml.load_all(path.read_text(), Loader=YAML_LOADER) if doc]


def _kv_problems(doc: dict, where: str) -> list[str]:
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{where}: {'.'.join(map(str, e.path))}: {e.message[:300]}"]
    except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as e:
        return [f"{where}: {e.message}"]
    return []


def is_ray(doc: dict) -> bool:
    return doc.get("apiVersion", "").split("/")[0] == "ray.io"


def core_problems(docs: list[tuple[str, dict]]) -> list[str]:
    return [p for file, doc in docs if not is_ray(doc)
            for p in _kv_problems(doc, f"{file}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}")]


def structural(schema: dict) -> dict:
    """A CRD's OpenAPI v3 schema as JSON Schema: int-or-string and nullable spelt out, and unknown
    fields rejected where the schema lists fields (the API server prunes or, with strict field
    validation, kubectl's default, refuses them)."""
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if schema.get("x-kubernetes-int-or-string") and "anyOf" not in schema:
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if "properties" in schema:
        out["properties"] = {k: structural(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = structural(schema["additionalProperties"])
    if isinstance(schema.get("items"), dict):
        out["items"] = structural(schema["items"])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in schema:
            out[key] = [structural(s) for s in schema[key]]
    if isinstance(schema.get("not"), dict):
        out["not"] = structural(schema["not"])
    return out


@functools.cache
def crd_validator(kind: str, api_version: str) -> jsonschema.protocols.Validator:
    group, version = api_version.split("/")
    path = SCHEMAS / "kuberay" / f"{group}_{kind.lower()}s.yaml"
    crd = yaml.load(path.read_text(), Loader=YAML_LOADER)
    assert crd["spec"]["names"]["kind"] == kind and crd["spec"]["group"] == group
    served = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    schema = structural(served[version]["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def ray_problems(docs: list[tuple[str, dict]]) -> list[str]:
    problems = []
    for file, doc in docs:
        if not is_ray(doc):
            continue
        where = f"{file}: {doc['kind']}/{doc['metadata'].get('name')}"
        problems += [f"{where}: {e}" for e in schema_errors(crd_validator(doc["kind"], doc["apiVersion"]), doc)]
        # The CRD leaves metadata and embedded pod templates to the API server: check them with
        # the core schemas.
        problems += _kv_problems({"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}, f"{where} metadata")
        for part, template, _ in pod_templates(doc):
            problems += _kv_problems({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "check"},
                                      "template": template}, part)
    return problems


# --- pods and what they request ------------------------------------------------------------------

def _ray_cluster_templates(where: str, spec: dict) -> list[tuple[str, dict, int]]:
    out = [(f"{where} head", spec["headGroupSpec"]["template"], 1)]
    for group in spec.get("workerGroupSpecs", []):
        replicas = group.get("replicas", group.get("minReplicas", 0)) * group.get("numOfHosts", 1)
        out.append((f"{where} group {group.get('groupName', '?')}", group.get("template") or {"spec": {"containers": []}}, replicas))
    return out


def pod_templates(doc: dict) -> list[tuple[str, dict, int]]:
    """(where, pod template, replicas) for every pod a document makes."""
    kind, spec = doc["kind"], doc.get("spec") or {}
    where = f"{kind}/{doc['metadata']['name']}"
    if kind in ("Deployment", "StatefulSet", "ReplicaSet"):
        return [(where, spec["template"], spec.get("replicas", 1))]
    if kind == "DaemonSet":
        return [(where, spec["template"], 1)]
    if kind == "Job":
        return [(where, spec["template"], spec.get("parallelism", 1))]
    if kind == "CronJob":
        return [(where, spec["jobTemplate"]["spec"]["template"], 1)]
    if kind == "Pod":
        return [(where, {"metadata": doc["metadata"], "spec": spec}, 1)]
    if kind == "RayCluster":
        return _ray_cluster_templates(where, spec)
    if kind == "RayJob":
        out = _ray_cluster_templates(where, spec["rayClusterSpec"]) if spec.get("rayClusterSpec") else []
        if spec.get("submitterPodTemplate"):
            out.append((f"{where} submitter", spec["submitterPodTemplate"], 1))
        return out
    if kind == "RayService":
        return _ray_cluster_templates(where, spec["rayClusterConfig"])
    return []


def ray_cluster_specs(doc: dict) -> list[dict]:
    """The Ray cluster a KubeRay document describes (none for other kinds, or a RayJob that
    submits to an existing cluster)."""
    spec = doc.get("spec") or {}
    found = {"RayCluster": spec, "RayJob": spec.get("rayClusterSpec"), "RayService": spec.get("rayClusterConfig")}
    return [found[doc["kind"]]] if found.get(doc["kind"]) else []


def cpu(quantity) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def gib(quantity) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    text = str(quantity)
    for unit, factor in sorted(units.items(), key=lambda u: -len(u[0])):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor / 2**30
    return float(text) / 2**30


def _requests(containers: list[dict]) -> tuple[float, float]:
    reqs = [(c.get("resources") or {}).get("requests") or {} for c in containers]
    return sum(cpu(r.get("cpu", 0)) for r in reqs), sum(gib(r.get("memory", 0)) for r in reqs)


def requested(docs: list[tuple[str, dict]]) -> tuple[float, float, list[str]]:
    """Total CPU and GiB requested at the replicas given (a Ray head with its autoscaler
    sidecar), and problems: pods that fit no node, autoscalers whose requests are unknown."""
    total_cpu = total_mem = 0.0
    too_big = []
    for _, doc in docs:
        sidecars = {}
        for spec in ray_cluster_specs(doc):
            if spec.get("enableInTreeAutoscaling"):
                sidecars = ((spec.get("autoscalerOptions") or {}).get("resources") or {}).get("requests") or {}
                if not sidecars:
                    too_big.append(f"{doc['kind']}/{doc['metadata']['name']}: the autoscaler's requests are not set")
        for where, template, replicas in pod_templates(doc):
            pod_cpu, pod_mem = _requests(template["spec"]["containers"])
            if where.endswith(" head") and sidecars:
                pod_cpu, pod_mem = pod_cpu + cpu(sidecars.get("cpu", 0)), pod_mem + gib(sidecars.get("memory", 0))
            total_cpu += replicas * pod_cpu
            total_mem += replicas * pod_mem
            gpu = any("nvidia.com/gpu" in ((c.get("resources") or {}).get("requests") or {})
                      for c in template["spec"]["containers"])
            if not gpu and (pod_cpu > NODE_CPU or pod_mem > NODE_MEMORY_GIB):
                too_big.append(f"{where}: {pod_cpu:g} CPU / {pod_mem:g} GiB fits no {NODE_CPU:g}-CPU {NODE_MEMORY_GIB:g}-GiB node")
    return total_cpu, total_mem, too_big


# --- cross-checks ----------------------------------------------------------------------------------

def _resolve(host: str, port: int | None, m: Manifests) -> str | None:
    """Why ``host:port`` does not reach a Service of k8s/ (None when it does)."""
    labels = host.split(".")  # SERVICE[.NAMESPACE[.svc...]] or POD.SERVICE[...] (headless)
    if labels[0] in m.services:
        ports = {p["port"] for p in m.services[labels[0]]["spec"]["ports"]}
    elif len(labels) > 1 and labels[1] in m.services:
        svc = m.services[labels[1]]
        pods = [sts for sts, name in m.sts_service.items() if name == labels[1]]
        if svc["spec"].get("clusterIP") != "None" or not any(re.fullmatch(re.escape(p) + r"-\d+", labels[0]) for p in pods):
            return f"{host}: not a pod of a StatefulSet behind the headless Service {labels[1]}"
        ports = {p["port"] for p in svc["spec"]["ports"]}
    elif labels[0] in m.head_services:
        ports = m.head_services[labels[0]]
    else:
        return f"{host}: no such Service in k8s/"
    if port is not None and port not in ports:
        return f"{host}:{port}: the Service has ports {sorted(ports)}"
    return None


def _container_ports(template: dict) -> list[dict]:
    return [p for c in template["spec"]["containers"] for p in c.get("ports", [])]


def _port_known(port, ports: list[dict]) -> bool:
    return any(p.get("name") == port for p in ports) if isinstance(port, str) else \
        any(p["containerPort"] == port for p in ports)


@dataclass
class Manifests:
    """What the documents of k8s/ define, by name: what pods may reference."""

    secrets: dict[str, set[str]] = field(default_factory=dict)     # name -> keys
    configmaps: dict[str, set[str]] = field(default_factory=dict)  # name -> keys
    pvcs: set[str] = field(default_factory=set)
    services: dict[str, dict] = field(default_factory=dict)
    sts_service: dict[str, str] = field(default_factory=dict)      # StatefulSet -> its serviceName
    head_services: dict[str, set[int]] = field(default_factory=dict)  # KubeRay's NAME-head-svc -> ports
    templates: list[tuple[str, dict, dict]] = field(default_factory=list)  # (where, pod template, document)

    @classmethod
    def of(cls, docs: list[tuple[str, dict]]) -> Manifests:
        m = cls()
        for file, doc in docs:
            kind, name = doc["kind"], doc["metadata"]["name"]
            if kind == "Secret":
                m.secrets[name] = set(doc.get("data") or {}) | set(doc.get("stringData") or {})
            elif kind == "ConfigMap":
                m.configmaps[name] = set(doc.get("data") or {}) | set(doc.get("binaryData") or {})
            elif kind == "PersistentVolumeClaim":
                m.pvcs.add(name)
            elif kind == "Service":
                m.services[name] = doc
            elif kind == "StatefulSet":
                m.sts_service[name] = doc["spec"].get("serviceName")
            elif kind == "RayCluster":
                head = doc["spec"]["headGroupSpec"]["template"]
                m.head_services[f"{name}-head-svc"] = {p["containerPort"] for p in _container_ports(head)}
            m.templates += [(f"{file}: {where}", template, doc) for where, template, _ in pod_templates(doc)]
        return m

    def ref(self, kind: str, ref: dict, where: str, key: str | None = None) -> list[str]:
        """Problems with a reference to a Secret or ConfigMap (and one of its keys)."""
        table = {"Secret": self.secrets, "ConfigMap": self.configmaps}[kind]
        name = ref.get("name") or ref.get("secretName")
        if ref.get("optional"):
            return []
        if name not in table:
            return [f"{where}: {kind} {name} is not in k8s/"]
        if key is not None and key not in table[name]:
            return [f"{where}: {kind} {name} has no key {key}"]
        return []


def k8s_problems(docs: list[tuple[str, dict]], texts: dict[str, str]) -> list[str]:
    """Cross-checks of the documents of k8s/ (``texts``: the files' text, comments included)."""
    m = Manifests.of(docs)
    problems = [f"{file}: {d['kind']}/{d['metadata']['name']}: not a DNS label" for file, d in docs
                if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", d["metadata"]["name"]) or len(d["metadata"]["name"]) > 63]
    problems += [f"StatefulSet/{sts}: serviceName {service} is no Service in k8s/"
                 for sts, service in m.sts_service.items() if service not in m.services]
    for where, template, doc in m.templates:
        problems += _pod_problems(where, template, doc, m)
    for file, doc in docs:
        problems += _ray_cluster_problems(f"{file}: {doc['kind']}/{doc['metadata']['name']}", doc)
    problems += _service_problems(m)
    # Every address named anywhere in k8s/ (comments included) resolves to a Service.
    for file, text in texts.items():
        for regex in (REDIS_URL, KAFKA_URL, re.compile(r"--(?:ray-)?address[= ]([A-Za-z0-9.-]+):(\d+)")):
            for host, port in regex.findall(text):
                why = _resolve(host, int(port) if port else 6379, m)
                if why:
                    problems.append(f"{file}: {why}")
    return problems


def _pod_problems(where: str, template: dict, doc: dict, m: Manifests) -> list[str]:
    spec = template["spec"]
    claims = {c["metadata"]["name"] for c in doc["spec"].get("volumeClaimTemplates", [])} \
        if doc["kind"] == "StatefulSet" else set()
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    problems = []
    for v in volumes.values():
        if "secret" in v:
            problems += m.ref("Secret", v["secret"], where)
        if "configMap" in v:
            problems += m.ref("ConfigMap", v["configMap"], where)
        if "persistentVolumeClaim" in v and v["persistentVolumeClaim"]["claimName"] not in m.pvcs:
            problems.append(f"{where}: PVC {v['persistentVolumeClaim']['claimName']} is not in k8s/")
    for secret in spec.get("imagePullSecrets", []):
        problems += m.ref("Secret", secret, where)
    ray_node = is_ray(doc) and not where.endswith(" submitter")
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        problems += _container_problems(f"{where} container {c['name']}", c, set(volumes) | claims, ray_node, doc, m)
    return problems


def _container_problems(where: str, c: dict, volumes: set[str], ray_node: bool, doc: dict, m: Manifests) -> list[str]:
    mounts = c.get("volumeMounts", [])
    problems = [f"{where}: mounts {v['name']}, no such volume" for v in mounts if v["name"] not in volumes]
    env = {}
    for e in c.get("env", []):
        source = e.get("valueFrom") or {}
        for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            if key in source:
                problems += m.ref(kind, source[key], where, source[key]["key"])
        env[e["name"]] = e.get("value", f"<from {next(iter(source), '?')}>")
    for e in c.get("envFrom", []):
        for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            if key in e:
                problems += m.ref(kind, e[key], where)
    # Kubernetes expands $(VAR) in command and args.
    argv = [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", "SAMPLE", a) for a in (c.get("command") or []) + (c.get("args") or [])]
    commands = simple_commands(argv)
    problems += image_problems(c.get("image"), ray_node or any(cmd[0] in ("vidscope", "ray") for cmd in commands), where)
    requests = (c.get("resources") or {}).get("requests") or {}
    if "cpu" not in requests or "memory" not in requests:
        problems.append(f"{where}: no CPU and memory requests")
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        for handler in ("httpGet", "tcpSocket", "grpc"):
            port = ((c.get(probe) or {}).get(handler) or {}).get("port")
            if port is not None and not _port_known(port, c.get("ports", [])):
                problems.append(f"{where}: {probe} on port {port}, which the container does not declare")
    for cmd in commands:
        problems += redis_durability_problems(cmd, where)
        if cmd[0] == "vidscope":
            found, args = vidscope_command(cmd[1:], where)
            problems += found
            if args is not None:
                problems += _args_problems(cmd[1:], args, mounts, env, where)
    if "KAFKA_PROCESS_ROLES" in env:
        problems += _kafka_problems(where, env, c.get("ports", []), f"{doc['metadata']['name']}-0", m)
    return problems


def _kafka_problems(where: str, env: dict[str, str], ports: list[dict], first_pod: str, m: Manifests) -> list[str]:
    """KRaft, and the addresses a broker advertises and its controllers use resolve here."""
    problems = kafka_kraft_problems(env, where)
    for listener in env.get("KAFKA_ADVERTISED_LISTENERS", "").split(","):
        host, port = host_port(listener.split("://", 1)[1].replace("$(POD_NAME)", first_pod))
        why = _resolve(host, port, m)
        if why or not _port_known(port, ports):
            problems.append(f"{where}: advertises {listener}: {why or 'not a container port'}")
    for voter in env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "").split(","):
        host, port = host_port(voter.split("@", 1)[-1])
        why = _resolve(host, port, m)
        if why:
            problems.append(f"{where}: controller quorum voter {voter}: {why}")
    return problems


def _ray_cluster_problems(where: str, doc: dict) -> list[str]:
    """The pinned Ray; no head left alone with num-cpus 0; a RayJob's entrypoint."""
    problems = []
    for spec in ray_cluster_specs(doc):
        if spec.get("rayVersion") != ray_version():
            problems.append(f"{where}: rayVersion {spec.get('rayVersion')}, pyproject.toml pins ray=={ray_version()}")
        workers = sum(g.get("minReplicas", 0) for g in spec.get("workerGroupSpecs", []))
        if str(spec["headGroupSpec"].get("rayStartParams", {}).get("num-cpus")) == "0" and workers < 1:
            problems.append(f"{where}: the head takes no work (num-cpus 0) and no worker group has minReplicas >= 1")
    if doc["kind"] != "RayJob":
        return problems
    argv = shlex.split(doc["spec"]["entrypoint"])
    if argv[:1] != ["vidscope"]:
        return problems + [f"{where}: the entrypoint is not a vidscope command"]
    found, args = vidscope_command(argv[1:], where)
    problems += found
    if args is None:
        return problems
    if getattr(args, "ray_address", None) != "auto":
        problems.append(f"{where}: the entrypoint runs on the job's cluster: it needs --ray-address auto")
    head = (doc["spec"].get("rayClusterSpec") or {}).get("headGroupSpec", {}).get("template")
    if head:  # the driver runs on the head: its paths and environment are the head's
        c = head["spec"]["containers"][0]
        env = {e["name"]: e.get("value", "<from>") for e in c.get("env", [])}
        problems += _args_problems(argv[1:], args, c.get("volumeMounts", []), env, where)
    return problems


def _service_problems(m: Manifests) -> list[str]:
    """Services select pods of k8s/ and target ports those pods declare."""
    problems = []
    for name, svc in m.services.items():
        selector = svc["spec"].get("selector") or {}
        matched = [t for _, t, _ in m.templates
                   if selector and selector.items() <= ((t.get("metadata") or {}).get("labels") or {}).items()]
        if not matched:
            problems.append(f"Service/{name}: selects no pod of k8s/")
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if any(not _port_known(target, _container_ports(t)) for t in matched):
                problems.append(f"Service/{name}: port {port['port']} targets {target}, not a port of its pods")
    return problems


def _args_problems(argv: list[str], args: argparse.Namespace, mounts: list[dict], env: dict, where: str) -> list[str]:
    problems = []
    data = str(args.data)
    if not any(PurePosixPath(data).is_relative_to(m["mountPath"]) for m in mounts):
        problems.append(f"{where}: --data {data} is on no volume of the container")
    if args.command == "serve" and args.host not in LOOPBACK and "--token" not in argv \
            and "VIDSCOPE_API_TOKEN" not in env:
        problems.append(f"{where}: serve on {args.host} without a token")
    return problems


def raw_texts() -> dict[str, str]:
    return {p.name: p.read_text() for p in k8s_files() + [K8S / "kustomization.yaml"]}

