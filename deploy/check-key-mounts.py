#!/usr/bin/env python3
"""Checks that rendered Kubernetes manifests give each case-event-log key only to the
processes that may hold it (docs/security.md, "Which process holds which key").

    check-key-mounts.py [--replicas NAME=COUNT]... RENDERED.yaml...
    check-key-mounts.py --self-test [--replicas NAME=COUNT]... RENDERED.yaml

RENDERED.yaml is the output of `kubectl kustomize` (one stream of YAML documents). For every
workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod) it finds the
process it runs (`serve <name>` in the container's command or args; none for the migration
Job or NATS) and fails when:

  - a workload mentions a key's Secret anywhere in its definition (a volume, a projected
    volume, env valueFrom, envFrom, a path, an annotation, ...) but its process may not hold
    that key, or sets a key's variable (SUNSHINE__LOG__<KEY> or SUNSHINE__LOG__<KEY>_FILE),
    directly or through a ConfigMap it imports with envFrom;
  - a process that holds a key does not get it as intended: a Secret volume of that Secret,
    mounted read-only, file mode readable by the pod's fsGroup and by no one else, and
    SUNSHINE__LOG__<KEY>_FILE naming the mounted file;
  - a key is given inline (SUNSHINE__LOG__<KEY>, not _FILE), any envFrom imports a Secret
    (its keys cannot be checked here), or a ConfigMap sets a key or its file;
  - a process of the table is missing, runs twice, or runs in a Deployment not named
    sunshine-<process>, or a workload runs a process the table does not know;
  - anything mentions the old shared Secret sunshine-log-keys, the manifests create one of
    the key Secrets, an HPA scales sunshine-log, or a --replicas count does not match.

--self-test first checks RENDERED.yaml (it must pass), then writes doctored copies of it (the
key-encryption key mounted into review, and so on) and expects this script to reject each.
Exit status: 0 passed, 1 a check failed, 2 usage or unreadable input.
"""

import argparse
import copy
import os
import re
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:  # the venv of deploy/k8s-check.sh has it (yamllint depends on PyYAML)
    print("check-key-mounts: PyYAML is not installed (pip install pyyaml)", file=sys.stderr)
    sys.exit(2)


class Key:
    def __init__(self, title, secret, setting, holders, section="log"):
        self.title = title
        self.secret = secret
        self.setting = setting  # the config field under [section]
        self.holders = frozenset(holders)
        self.inline_var = "SUNSHINE__%s__%s" % (section.upper(), setting.upper())
        self.file_var = self.inline_var + "_FILE"


# The table of docs/security.md. A process absent from a key's holders must not get it.
KEYS = [
    Key("checkpoint signing key", "sunshine-checkpoint-signing-key", "checkpoint_signing_key", {"log"}),
    Key("key-encryption key", "sunshine-key-encryption-key", "key_encryption_key", {"intake", "payment"}),
    Key("blind-index key", "sunshine-blind-index-key", "blind_index_key", {"intake"}),
    # department-integration's own person-index key (not a log key: [integration]).
    Key("person-index key", "sunshine-person-index-key", "person_index_key",
        {"department-integration"}, section="integration"),
]
PROCESSES = ["log", "intake", "payment", "department-integration", "review", "disclosure", "audit"]
OLD_SECRET = "sunshine-log-keys"
LOG_DEPLOYMENT = "sunshine-log"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}
# A key (or its file) set in a configuration file: `key_encryption_key = …` under [log], or
# `log.key_encryption_key = …`.
CONFIG_LINE = re.compile(
    r"(?m)^\s*(?:(?:log|integration)\s*\.\s*)?(%s)(?:_file)?\s*=" % "|".join(k.setting for k in KEYS)
)


def strings(node):
    """Every string in a parsed YAML document: values and mapping keys."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def pod_spec(obj):
    spec = obj.get("spec") or {}
    if obj["kind"] == "Pod":
        return spec
    if obj["kind"] == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("spec") or {}


def containers(spec):
    for field in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(field) or []


def process_of(spec):
    """The `serve <name>` of the pod's containers; None when no container serves."""
    found = set()
    for container in containers(spec):
        words = [str(w) for w in (container.get("command") or []) + (container.get("args") or [])]
        for i, word in enumerate(words[:-1]):
            if word == "serve":
                found.add(words[i + 1])
    if len(found) > 1:
        return "<several: %s>" % ", ".join(sorted(found))
    return found.pop() if found else None


def secret_volumes(spec, secret):
    """(volume, projected key→path, mode) for each volume that projects Secret `secret`."""
    for volume in spec.get("volumes") or []:
        sources = []
        if "secret" in volume:
            source = volume["secret"] or {}
            if source.get("secretName") == secret:
                sources.append((source, source.get("defaultMode")))
        for item in ((volume.get("projected") or {}).get("sources") or []):
            source = item.get("secret") or {}
            if source.get("name") == secret:
                sources.append((source, (volume["projected"] or {}).get("defaultMode")))
        for source, default_mode in sources:
            items = source.get("items")
            if items:
                for item in items:
                    yield volume["name"], item.get("key"), item.get("path"), item.get("mode", default_mode)
            else:
                yield volume["name"], "key", "key", default_mode


def check(docs, replicas):
    errors = []
    configmaps = {}
    workloads = []
    for doc in docs:
        kind = doc.get("kind")
        name = (doc.get("metadata") or {}).get("name", "?")
        where = "%s/%s" % (kind, name)
        for text in strings(doc):
            if OLD_SECRET in text:
                errors.append("%s mentions the old shared Secret %s" % (where, OLD_SECRET))
                break
        if kind == "Secret" and any(name.startswith(k.secret) for k in KEYS):
            errors.append("%s: the manifests must not create a key Secret (district IT does)" % where)
        if kind == "ConfigMap":
            data = dict(doc.get("data") or {})
            configmaps[name] = data
            for data_key, value in data.items():
                for key in KEYS:
                    if data_key.upper() in (key.inline_var, key.file_var):
                        errors.append("%s sets %s: a key is never configuration shared by pods" % (where, data_key))
                match = CONFIG_LINE.search(str(value))
                if match:
                    errors.append("%s: %s sets log.%s: a key (or its file) is never in a ConfigMap"
                                  % (where, data_key, match.group(1)))
        if kind == "HorizontalPodAutoscaler":
            target = (doc.get("spec") or {}).get("scaleTargetRef") or {}
            if target.get("name") == LOG_DEPLOYMENT:
                errors.append("%s scales %s: it runs exactly its fixed count (one active, one waiting)"
                              % (where, LOG_DEPLOYMENT))
        if kind in WORKLOAD_KINDS:
            workloads.append(doc)

    seen = {}
    for obj in workloads:
        kind, name = obj["kind"], obj["metadata"]["name"]
        where = "%s/%s" % (kind, name)
        spec = pod_spec(obj)
        process = process_of(spec)
        if process is not None:
            if process not in PROCESSES:
                errors.append("%s runs `serve %s`, which the key table of check-key-mounts.py does not know"
                              % (where, process))
            elif kind != "Deployment" or name != "sunshine-" + process:
                errors.append("%s runs `serve %s`: expected the Deployment sunshine-%s" % (where, process, process))
            else:
                seen[process] = seen.get(process, 0) + 1
        label = "`serve %s`" % process if process else "no Sunshine process"

        # Environment variable names, own and imported from ConfigMaps.
        env = {}
        for container in containers(spec):
            for var in container.get("env") or []:
                env[str(var.get("name", "")).upper()] = var
            for source in container.get("envFrom") or []:
                if "secretRef" in source:
                    errors.append("%s imports the Secret %s with envFrom: its keys cannot be checked; "
                                  "use env or a volume" % (where, (source["secretRef"] or {}).get("name")))
                ref = source.get("configMapRef")
                if ref:
                    for data_key in configmaps.get(ref.get("name"), {}):
                        env.setdefault((source.get("prefix", "") + data_key).upper(), {"from": ref.get("name")})
        all_text = list(strings(obj))

        for key in KEYS:
            holds = process in key.holders
            mentions = any(key.secret in text for text in all_text)
            if not holds:
                if mentions:
                    errors.append("%s (%s) references the Secret %s (the %s), which only %s may hold"
                                  % (where, label, key.secret, key.title, " and ".join(sorted(key.holders))))
                for var in (key.inline_var, key.file_var):
                    if var in env:
                        errors.append("%s (%s) sets %s, but may not hold the %s" % (where, label, var, key.title))
                continue
            if key.inline_var in env:
                errors.append("%s (%s) sets %s: give keys as files (%s)" % (where, label, key.inline_var, key.file_var))
            # A holder: a read-only Secret volume, readable by the group only, named in _FILE.
            mounted = {}
            for volume, secret_key, path, mode in secret_volumes(spec, key.secret):
                if secret_key != "key":
                    continue
                mode = 0o644 if mode is None else mode
                if mode & 0o040 == 0 or mode & 0o007:
                    errors.append("%s: volume %s gives %s mode %o: the group (fsGroup) must read it, others not"
                                  % (where, volume, key.secret, mode))
                mounted[volume] = path
            files = set()
            for container in spec.get("containers") or []:
                for mount in container.get("volumeMounts") or []:
                    if mount.get("name") in mounted:
                        if not mount.get("readOnly"):
                            errors.append("%s mounts %s without readOnly: true" % (where, key.secret))
                        if mount.get("subPath"):
                            errors.append("%s mounts %s with subPath: the file would miss updates" % (where, key.secret))
                        files.add(mount["mountPath"].rstrip("/") + "/" + mounted[mount["name"]])
            if not files:
                errors.append("%s (%s) must hold the %s: no read-only volume mount of the Secret %s's key `key`"
                              % (where, label, key.title, key.secret))
                continue
            value = (env.get(key.file_var) or {}).get("value")
            if value not in files:
                errors.append("%s (%s): %s is %r, expected the mounted file %s"
                              % (where, label, key.file_var, value, " or ".join(sorted(files))))
            if (spec.get("securityContext") or {}).get("fsGroup") is None:
                errors.append("%s mounts %s but sets no fsGroup: the process could not read it" % (where, key.secret))

    for process in PROCESSES:
        if seen.get(process, 0) != 1:
            errors.append("Deployment sunshine-%s (`serve %s`): found %d times, expected once"
                          % (process, process, seen.get(process, 0)))
    deployments = {d["metadata"]["name"]: d for d in workloads if d["kind"] == "Deployment"}
    for name, count in replicas.items():
        got = (deployments.get(name, {}).get("spec") or {}).get("replicas")
        if got != count:
            errors.append("Deployment/%s has replicas %s, expected %d" % (name, got, count))
    return errors, len(workloads)


def load(path):
    with open(path, encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if isinstance(doc, dict) and doc.get("kind")]


def find(docs, kind, name):
    for doc in docs:
        if doc.get("kind") == kind and doc["metadata"]["name"] == name:
            return doc
    raise SystemExit("check-key-mounts: self-test: %s/%s is not in the rendering" % (kind, name))


def container(docs, name):
    return pod_spec(find(docs, "Deployment", name))["containers"][0]


def kek_into_review(docs):
    spec = pod_spec(find(docs, "Deployment", "sunshine-review"))
    spec.setdefault("volumes", []).append(
        {"name": "kek", "secret": {"secretName": "sunshine-key-encryption-key", "defaultMode": 0o440}})
    spec["containers"][0].setdefault("volumeMounts", []).append(
        {"name": "kek", "mountPath": "/run/secrets/sunshine/sunshine-key-encryption-key", "readOnly": True})
    spec["containers"][0]["env"].append({"name": "SUNSHINE__LOG__KEY_ENCRYPTION_KEY_FILE",
                                         "value": "/run/secrets/sunshine/sunshine-key-encryption-key/key"})


def signing_env_into_intake(docs):
    container(docs, "sunshine-intake")["env"].append({"name": "SUNSHINE__LOG__CHECKPOINT_SIGNING_KEY", "valueFrom": {
        "secretKeyRef": {"name": "sunshine-checkpoint-signing-key", "key": "key"}}})


def inline_kek_in_intake(docs):
    container(docs, "sunshine-intake")["env"].append({"name": "SUNSHINE__LOG__KEY_ENCRYPTION_KEY", "valueFrom": {
        "secretKeyRef": {"name": "sunshine-key-encryption-key", "key": "key"}}})


def blind_index_projected_into_audit(docs):
    pod_spec(find(docs, "Deployment", "sunshine-audit")).setdefault("volumes", []).append({"name": "p", "projected": {
        "sources": [{"secret": {"name": "sunshine-blind-index-key"}}]}})


def old_secret_into_disclosure(docs):
    pod_spec(find(docs, "Deployment", "sunshine-disclosure")).setdefault("volumes", []).append(
        {"name": "old", "secret": {"secretName": OLD_SECRET}})


def kek_file_in_shared_env(docs):
    for doc in docs:
        if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith("sunshine-env"):
            doc.setdefault("data", {})["SUNSHINE__LOG__KEY_ENCRYPTION_KEY_FILE"] = "/run/kek"
            return
    raise SystemExit("check-key-mounts: self-test: no ConfigMap sunshine-env in the rendering")


def kek_in_config_file(docs):
    for doc in docs:
        if doc["kind"] == "ConfigMap" and "sunshine.toml" in (doc.get("data") or {}):
            doc["data"]["sunshine.toml"] += '\n[log]\nkey_encryption_key = "AAAA"\n'
            return
    raise SystemExit("check-key-mounts: self-test: no sunshine.toml ConfigMap in the rendering")


def intake_without_kek(docs):
    spec = pod_spec(find(docs, "Deployment", "sunshine-intake"))
    spec["volumes"] = [v for v in spec["volumes"]
                       if (v.get("secret") or {}).get("secretName") != "sunshine-key-encryption-key"]


def payment_key_world_readable(docs):
    for volume in pod_spec(find(docs, "Deployment", "sunshine-payment"))["volumes"]:
        if "secret" in volume:
            volume["secret"]["defaultMode"] = 0o444
            volume["secret"].pop("items", None)


def one_log_replica(docs):
    find(docs, "Deployment", LOG_DEPLOYMENT)["spec"]["replicas"] = 1


def hpa_for_log(docs):
    docs.append({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                 "metadata": {"name": LOG_DEPLOYMENT},
                 "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": LOG_DEPLOYMENT},
                          "minReplicas": 2, "maxReplicas": 4}})


def log_deployment_missing(docs):
    docs.remove(find(docs, "Deployment", LOG_DEPLOYMENT))


# (doctoring, text the failure must contain)
DOCTORED = [
    (kek_into_review, "Deployment/sunshine-review (`serve review`) references the Secret sunshine-key-encryption-key"),
    (signing_env_into_intake, "(`serve intake`) sets SUNSHINE__LOG__CHECKPOINT_SIGNING_KEY, but may not hold"),
    (inline_kek_in_intake, "sets SUNSHINE__LOG__KEY_ENCRYPTION_KEY: give keys as files"),
    (blind_index_projected_into_audit, "Deployment/sunshine-audit (`serve audit`) references the Secret sunshine-blind-index-key"),
    (old_secret_into_disclosure, "Deployment/sunshine-disclosure mentions the old shared Secret"),
    (kek_file_in_shared_env, "sets SUNSHINE__LOG__KEY_ENCRYPTION_KEY_FILE, but may not hold"),
    (kek_in_config_file, "sets log.key_encryption_key"),
    (intake_without_kek, "Deployment/sunshine-intake (`serve intake`) must hold the key-encryption key"),
    (payment_key_world_readable, "mode 444"),
    (one_log_replica, "Deployment/sunshine-log has replicas 1, expected 2"),
    (hpa_for_log, "HorizontalPodAutoscaler/sunshine-log scales sunshine-log"),
    (log_deployment_missing, "Deployment sunshine-log (`serve log`): found 0 times"),
]


def self_test(path, replica_args):
    docs = load(path)
    errors, _ = check(docs, parse_replicas(replica_args))
    if errors:
        print("check-key-mounts: self-test: %s must pass first:" % path, file=sys.stderr)
        for error in errors:
            print("  " + error, file=sys.stderr)
        return 1
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for doctor, expected in DOCTORED:
            doctored = copy.deepcopy(docs)
            doctor(doctored)
            file = os.path.join(tmp, doctor.__name__ + ".yaml")
            with open(file, "w", encoding="utf-8") as out:
                yaml.safe_dump_all(doctored, out)
            args = [sys.executable, os.path.abspath(__file__)]
            for replica in replica_args:
                args += ["--replicas", replica]
            result = subprocess.run(args + [file], capture_output=True, text=True, check=False)
            if result.returncode == 1 and expected in result.stderr:
                print("check-key-mounts: self-test: %s rejected, as it should be" % doctor.__name__)
            else:
                failures += 1
                print("check-key-mounts: self-test: %s: expected exit 1 with %r, got exit %d:\n%s%s"
                      % (doctor.__name__, expected, result.returncode, result.stdout, result.stderr),
                      file=sys.stderr)
    if failures:
        print("check-key-mounts: self-test FAILED: %d of %d doctored renderings were not rejected"
              % (failures, len(DOCTORED)), file=sys.stderr)
        return 1
    print("check-key-mounts: self-test passed: all %d doctored renderings of %s rejected" % (len(DOCTORED), path))
    return 0


def parse_replicas(values):
    replicas = {}
    for value in values:
        name, _, count = value.partition("=")
        if not name or not count.isdigit():
            raise SystemExit("check-key-mounts: --replicas takes NAME=COUNT, not %r" % value)
        replicas[name] = int(count)
    return replicas


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", action="append", default=[], metavar="NAME=COUNT",
                        help="expect Deployment NAME to have COUNT replicas")
    parser.add_argument("--self-test", action="store_true",
                        help="check FILE, then expect doctored copies of it to be rejected")
    parser.add_argument("files", nargs="+", metavar="FILE")
    args = parser.parse_args()
    if args.self_test:
        if len(args.files) != 1:
            parser.error("--self-test takes one rendered file")
        return self_test(args.files[0], args.replicas)
    replicas = parse_replicas(args.replicas)
    status = 0
    for path in args.files:
        try:
            docs = load(path)
        except (OSError, yaml.YAMLError) as error:
            print("check-key-mounts: %s: %s" % (path, error), file=sys.stderr)
            return 2
        errors, workloads = check(docs, replicas)
        for error in errors:
            print("check-key-mounts: %s: %s" % (path, error), file=sys.stderr)
        if errors:
            status = 1
        else:
            print("check-key-mounts: %s: ok (%d workloads, %d keys)" % (path, workloads, len(KEYS)))
    return status


if __name__ == "__main__":
    sys.exit(main())
