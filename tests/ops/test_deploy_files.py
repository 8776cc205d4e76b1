"""The deployment files parse and validate with the tools operators use, and run the README's commands.

No Docker engine or cluster runs here: docker-compose renders the compose file, kubernetes-validate
checks the manifests against the Kubernetes schemas, promtool and amtool check Prometheus and
Alertmanager configuration and run the alert rules' unit tests.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.ops.conftest import ROOT, require_binary
from tests.ops.dashboards import BUILTIN_VARIABLES, DASHBOARDS, all_panels, dashboard_queries, substitute

DEPLOY = ROOT / "deploy"
RULES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
K8S = DEPLOY / "k8s"
ROLES = ("web", "migrations", "worker", "beat")


def run(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def readme_commands() -> dict[str, str]:
    """The role -> command table of the README's Operations section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Operations") :]
    rows = re.findall(r"^\|\s*(web|migrations|worker|beat)\s*\|\s*`([^`]+)`\s*\|", section, flags=re.MULTILINE)
    commands = dict(rows)
    assert set(commands) == set(ROLES), f"README's Operations table must list {ROLES}; found {sorted(commands)}"
    return commands


# --- Dockerfile ----------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_with_a_health_check_and_runs_the_readme_web_command():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, flags=re.MULTILINE | re.IGNORECASE)
    assert len(stages) >= 2, stages
    assert "COPY --from=builder" in text
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users, "the image must switch to an unprivileged user"
    assert users[-1].split(":")[0] not in {"root", "0"}
    health = re.search(r"^HEALTHCHECK .*?CMD (\[.*?\])$", text, flags=re.MULTILINE | re.DOTALL)
    assert health is not None
    assert "/healthz" in health.group(1)
    cmd = re.findall(r"^CMD (\[.*\])$", text, flags=re.MULTILINE)
    assert " ".join(json.loads(cmd[-1])) == readme_commands()["web"]
    for role, command in readme_commands().items():
        assert command in text, f"the Dockerfile's header should name the {role} command {command!r}"


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".env", ".git", ".venv", "var/"):
        assert entry in ignored


# --- docker-compose ------------------------------------------------------------------------


def _env_example_filled() -> str:
    """.env.example with its required (empty) values filled in, as an operator would."""
    filled = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "churn.example.com",
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "GRAFANA_ADMIN_PASSWORD": secrets.token_hex(16),
        "METRICS_TOKEN": secrets.token_urlsafe(32),
    }
    lines = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}={filled[name]}" if line.endswith("=") and name in filled else line)
    return "\n".join(lines) + "\n"


def _compose_config(tmp_path: Path, env_text: str) -> subprocess.CompletedProcess[str]:
    binary = require_binary("docker-compose")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    (tmp_path / ".env").write_text(env_text)
    clean_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)}
    return run(binary, "config", cwd=tmp_path, env=clean_env)


def test_compose_file_renders_with_every_service_health_checked_and_the_readme_commands(tmp_path):
    done = _compose_config(tmp_path, _env_example_filled())
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    services = config["services"]
    assert {"web", "worker", "beat", "migrate", "db", "redis", "prometheus", "alertmanager", "grafana"} <= set(services)
    commands = readme_commands()
    assert services["web"]["command"] == commands["web"]
    assert services["migrate"]["command"] == commands["migrations"]
    assert services["worker"]["command"] == commands["worker"]
    assert services["beat"]["command"] == commands["beat"]
    for name in ("web", "worker", "db", "redis", "prometheus", "alertmanager", "grafana"):
        assert services[name]["healthcheck"]["test"], name
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert {"postgres-data", "redis-data", "prometheus-data", "grafana-data", "churn-data"} <= set(config["volumes"])
    web_env = services["web"]["environment"]
    assert web_env["DJANGO_ENV"] == "production"
    assert web_env["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/prometheus"
    assert web_env["DATABASE_URL"].startswith("postgres://churn:")


def test_compose_refuses_to_render_without_the_required_secrets(tmp_path):
    done = _compose_config(tmp_path, (ROOT / ".env.example").read_text())
    assert done.returncode != 0
    assert "in .env" in done.stderr


def test_compose_mounts_the_repository_monitoring_files_that_exist():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service in ("prometheus", "alertmanager", "grafana"):
        for volume in compose["services"][service]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./deploy/") and "${" not in source:
                assert (ROOT / source).exists(), f"{service} mounts missing {source}"


# --- .env.example --------------------------------------------------------------------------

_ENV_LINE = re.compile(r"^#?\s?([A-Z][A-Z0-9_]+)=")


def _documented() -> dict[str, int]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    found = {}
    for i, line in enumerate(lines):
        match = _ENV_LINE.match(line)
        if match:
            found[match.group(1)] = i
    return found


def _variables_read_by_the_code() -> set[str]:
    settings_text = (ROOT / "churn_platform" / "settings.py").read_text()
    names = set(re.findall(r"\benv(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]+)\"", settings_text))
    sources = [ROOT / "gunicorn.conf.py", *sorted((ROOT / "churn_platform").glob("*.py"))]
    sources += sorted((ROOT / "churn_infra").glob("*.py"))
    for path in sources:
        names |= set(re.findall(r"os\.environ(?:\.get|\.setdefault)?[\[(]\s*\"([A-Z][A-Z0-9_]+)\"", path.read_text()))
    names |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", (ROOT / "docker-compose.yml").read_text()))
    return names - {"DJANGO_SETTINGS_MODULE"}


def test_env_example_documents_every_variable_the_platform_reads():
    documented = _documented()
    missing = sorted(_variables_read_by_the_code() - set(documented))
    assert not missing, f"add these to .env.example, each with a comment saying what it does: {missing}"


def test_every_env_example_variable_has_a_description_above_it():
    lines = (ROOT / ".env.example").read_text().splitlines()
    for name, index in _documented().items():
        above = index - 1
        while above >= 0 and _ENV_LINE.match(lines[above]):
            above -= 1  # a group of related variables shares one description
        assert above >= 0, name
        assert lines[above].startswith("# "), name
        assert not lines[above].startswith("# ----"), name


# --- Kubernetes ----------------------------------------------------------------------------


def _manifests() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def _by_kind(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in _manifests() if d["kind"] == kind}


def test_kubernetes_manifests_validate_against_the_schemas():
    binary = Path(sys.executable).parent / "kubernetes-validate"
    files = [str(p) for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml"]
    done = run(str(binary), "--strict", "--kubernetes-version", "1.31.0", *files)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed") == len(_manifests())


def test_kustomization_applies_every_manifest_except_the_secret_template():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    expected = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.template.yaml"}
    assert set(kustomization["resources"]) == expected


def test_kubernetes_workloads_run_the_readme_commands_with_probes_and_resources():
    commands = readme_commands()
    deployments = _by_kind("Deployment")
    job = _by_kind("Job")["churn-migrate"]

    def container(obj: dict) -> dict:
        return obj["spec"]["template"]["spec"]["containers"][0]

    assert " ".join(container(deployments["churn-web"])["command"]) == commands["web"]
    assert " ".join(container(deployments["churn-worker"])["command"]) == commands["worker"]
    assert " ".join(container(deployments["churn-beat"])["command"]) == commands["beat"]
    assert " ".join(container(job)["command"]) == commands["migrations"]
    for name in ("churn-web", "churn-worker"):
        spec = container(deployments[name])
        assert spec["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert spec["livenessProbe"]["httpGet"]["path"] == "/healthz", name
    for obj in [*deployments.values(), job]:
        spec = container(obj)
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(spec["resources"][kind]), (obj["metadata"]["name"], kind)
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
    assert deployments["churn-beat"]["spec"]["replicas"] == 1
    assert deployments["churn-beat"]["spec"]["strategy"]["type"] == "Recreate"
    # Celery's default pool size is the node's core count, not the pod's CPU limit.
    worker = container(deployments["churn-worker"])
    concurrency = {e["name"]: e.get("value") for e in worker["env"]}["CELERY_WORKER_CONCURRENCY"]
    assert int(concurrency) == int(worker["resources"]["limits"]["cpu"])


def test_kubernetes_scaling_disruption_and_ingress():
    hpas = _by_kind("HorizontalPodAutoscaler")
    for name in ("churn-web", "churn-worker"):
        metric = hpas[name]["spec"]["metrics"][0]["resource"]
        assert metric["name"] == "cpu"
        assert metric["target"]["averageUtilization"] == 70
        assert hpas[name]["spec"]["scaleTargetRef"]["name"] == name
    assert set(_by_kind("PodDisruptionBudget")) == {"churn-web", "churn-worker"}
    ingress = _by_kind("Ingress")["churn-web"]
    assert ingress["spec"]["tls"][0]["secretName"]
    paths = {p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]}
    assert "/api/" in paths
    assert not paths & {"/metrics", "/healthz", "/readyz", "/"}
    services = _by_kind("Service")
    assert services["churn-web-metrics"]["spec"]["clusterIP"] == "None"
    assert services["churn-worker-metrics"]["spec"]["clusterIP"] == "None"
    secret = _by_kind("Secret")["churn-secrets"]
    assert all(value == "" for value in secret["stringData"].values()), "the template must hold no secret values"
    config = _by_kind("ConfigMap")["churn-config"]["data"]
    assert config["DJANGO_ENV"] == "production"


# --- Prometheus and Alertmanager -----------------------------------------------------------


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus-k8s.yml"])
def test_prometheus_configs_pass_promtool_with_the_rules_they_load(tmp_path, name):
    promtool = require_binary("promtool")
    config = yaml.safe_load((DEPLOY / "prometheus" / name).read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} >= {"churn-web", "churn-worker"}
    # The rules are mounted at /etc/prometheus/rules in the containers; point at the repository's.
    config["rule_files"] = [str(p) for p in RULES]
    # Both churn jobs send the metrics token from Prometheus's secrets folder; point at a file here.
    token = tmp_path / "metrics-token"
    token.write_text(secrets.token_urlsafe(32))
    for job in config["scrape_configs"]:
        if job["job_name"] in {"churn-web", "churn-worker"}:
            assert job["authorization"]["credentials_file"] == "/etc/prometheus/secrets/metrics-token"
            job["authorization"]["credentials_file"] = str(token)
    (tmp_path / name).write_text(yaml.safe_dump(config))
    done = run(promtool, "check", "config", str(tmp_path / name))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 2 rule files found" in done.stdout + done.stderr or "SUCCESS" in done.stdout


def test_alert_rules_pass_promtool_check():
    promtool = require_binary("promtool")
    done = run(promtool, "check", "rules", *map(str, RULES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_fires_and_resolves_in_the_promtool_unit_tests():
    promtool = require_binary("promtool")
    test_file = DEPLOY / "prometheus" / "tests" / "churn-alerts.test.yml"
    done = run(promtool, "test", "rules", str(test_file), cwd=test_file.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout

    alerts = {
        rule["alert"]
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    required = {
        "ChurnHighErrorRate", "ChurnHighLatencyP95", "ChurnModelAccuracyLow", "ChurnFeatureDrift",
        "ChurnRateUnusualChange", "ChurnAuthFailureSpike", "ChurnNoActiveModel", "ChurnQueueBacklog", "ChurnHighCpu",
    }
    assert required <= alerts
    fired: set[str] = set()
    resolved: set[str] = set()
    for case in yaml.safe_load(test_file.read_text())["tests"]:
        checks = sorted(case.get("alert_rule_test", []), key=lambda c: _duration(c["eval_time"]))
        for i, check in enumerate(checks):
            if check["exp_alerts"]:
                fired.add(check["alertname"])
                later = [c for c in checks[i + 1 :] if c["alertname"] == check["alertname"]]
                if any(not c["exp_alerts"] for c in later):
                    resolved.add(check["alertname"])
    assert alerts <= fired, f"alerts never made to fire: {sorted(alerts - fired)}"
    assert alerts <= resolved, f"alerts never shown to resolve: {sorted(alerts - resolved)}"


def _duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhd])", text))


def test_every_alert_has_a_severity_a_summary_and_a_runbook_entry_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" not in rule:
                    continue
                assert rule["labels"]["severity"] in {"critical", "warning"}
                assert rule["annotations"]["summary"]
                assert rule["annotations"]["runbook"]
                assert f"`{rule['alert']}`" in readme, f"README's alert table lacks {rule['alert']}"


def test_alertmanager_config_passes_amtool_and_routes_by_severity():
    amtool = require_binary("amtool")
    path = DEPLOY / "alertmanager" / "alertmanager.yml"
    done = run(amtool, "check-config", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    config = yaml.safe_load(path.read_text())
    matchers = {m for route in config["route"]["routes"] for m in route["matchers"]}
    assert 'severity="critical"' in matchers
    for receiver, labels in (("on-call-pager", "severity=critical"), ("team-chat", "severity=warning")):
        routed = run(amtool, "config", "routes", "test", f"--config.file={path}", labels, "alertname=ChurnHighCpu")
        assert routed.returncode == 0, routed.stderr
        assert receiver in routed.stdout, (labels, routed.stdout)


# --- Grafana -------------------------------------------------------------------------------


def _known_metric_names() -> set[str]:
    import django_prometheus.db.metrics
    import django_prometheus.middleware  # noqa: F401
    from prometheus_client import REGISTRY

    import churn_infra.metrics  # noqa: F401

    known = set(REGISTRY._names_to_collectors)
    known |= {
        "churn_celery_queue_depth", "churn_model_registry_active_versions", "churn_model_registry_active_info",
        "churn_container_cpu_usage_seconds_total", "churn_container_cpu_limit_cores", "up", "ALERTS",
    }
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            known |= {rule["record"] for rule in group["rules"] if "record" in rule}
    return known


def test_grafana_dashboard_covers_health_model_and_business_with_known_metrics():
    from django_prometheus.middleware import Metrics

    Metrics.get_instance()  # django-prometheus registers its HTTP metrics on first use
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "churn-platform.json").read_text())
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == ["Service health", "Model behaviour", "Business outcomes"]
    known = _known_metric_names()
    queries = dashboard_queries()
    for query in queries:
        for name in re.findall(r"\b(?:churn[_:]|django_)[A-Za-z0-9_:]*", query.promql):
            assert name in known, f"dashboard query uses unknown metric {name}: {query}"
    used = " ".join(q.promql for q in queries)
    for metric in ("churn_predictions_total", "churn_prediction_probability_bucket", "churn_model_live_accuracy",
                   "churn_drift_psi", "churn_api_requests_total", "churn_auth_failures_total",
                   "churn_celery_queue_depth", "churn_campaign_retention_uplift", "churn_ingestion_rows_total",
                   "churn_high_risk_customers_identified_total", "churn_model_registry_active_info"):
        assert metric in used, metric


def test_every_dashboard_file_has_unique_panel_ids_and_only_prometheus_queries():
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        panels = all_panels(dashboard["panels"])
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), path.name
        for panel in panels:
            for target in panel.get("targets", []):
                assert target.get("expr"), (path.name, panel.get("title"), target)
                datasource = target.get("datasource") or panel.get("datasource") or {}
                assert datasource.get("uid") in ("prometheus", "${datasource}"), (path.name, panel.get("title"))


def test_the_dashboard_walk_finds_panels_inside_rows_and_substitutes_grafana_variables(tmp_path):
    """What tests/ops/test_dashboards.py sends to Prometheus: every target of every file, nested
    rows included, with the variables as Grafana would fill them in."""
    assert {q.dashboard for q in dashboard_queries()} == {p.name for p in DASHBOARDS}
    for path in DASHBOARDS:
        assert path.read_text().count('"expr"') == len(dashboard_queries([path]))
    board = {
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "current": {"value": "prometheus"}},
            {"name": "job", "type": "custom", "current": {"value": "churn-web"}},
            {"name": "queue", "type": "query", "multi": True, "current": {"value": ["$__all"]},
             "options": [{"value": "$__all"}, {"value": "batch"}, {"value": "training"}]},
            {"name": "window", "type": "interval", "current": {}, "options": [{"value": "5m"}, {"value": "1h"}]},
        ]},
        "panels": [
            {"type": "row", "title": "Collapsed", "collapsed": True, "panels": [
                {"title": "Inside", "targets": [
                    {"refId": "A", "expr": 'rate(x{job="$job",queue=~"${queue}"}[$__rate_interval])'},
                    {"refId": "B", "expr": "increase(y[[[window]]])"},
                ]},
            ]},
            {"title": "Text", "type": "text"},
        ],
        "annotations": {"list": [{"name": "Deploys", "expr": 'changes(x{job="$job"}[$__interval])'}]},
    }
    path = tmp_path / "board.json"
    path.write_text(json.dumps(board))
    assert [(q.panel, q.ref_id, q.promql) for q in dashboard_queries([path])] == [
        ("Inside", "A", 'rate(x{job="churn-web",queue=~"(batch|training)"}[1m])'),
        ("Inside", "B", "increase(y[5m])"),
        ("annotation Deploys", "-", 'changes(x{job="churn-web"}[15s])'),
    ]
    with pytest.raises(AssertionError, match=r"unknown Grafana variable \$nope"):
        substitute('up{job="$nope"}', BUILTIN_VARIABLES)


def test_the_alerts_annotation_marks_every_alert_of_the_rules():
    """No alert fires within the live dashboard test (the shortest ``for`` is 2 minutes), so the
    annotation's selector is checked here against the alerts the rules define."""
    alerts = {
        rule["alert"] for path in RULES for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"] if "alert" in rule
    }
    [annotation] = [q for q in dashboard_queries() if q.annotation]
    assert re.fullmatch(r'ALERTS\{alertstate="firing",alertname=~"([^"]+)"\}', annotation.promql), annotation
    pattern = re.search(r'alertname=~"([^"]+)"', annotation.promql).group(1)
    assert alerts
    assert all(re.fullmatch(pattern, name) for name in alerts), (pattern, alerts)


def test_grafana_provisioning_points_at_the_dashboard_and_the_prometheus_datasource():
    datasource = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["uid"] == "prometheus"
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "churn.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards" in compose


# --- network isolation (issue 16) ----------------------------------------------------------


def _ingress_peers(policy: dict) -> list[tuple[str, int]]:
    return [
        (peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], port["port"])
        for rule in policy["spec"]["ingress"] for peer in rule["from"] for port in rule["ports"]
    ]


def test_network_policies_deny_by_default_and_open_only_the_documented_paths():
    policies = _by_kind("NetworkPolicy")
    deny = policies["churn-default-deny"]["spec"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny

    web = policies["churn-web-ingress"]
    assert web["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "web"
    assert sorted(_ingress_peers(web)) == [("ingress-nginx", 8000), ("monitoring", 8000)]
    worker = policies["churn-worker-metrics"]
    assert worker["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "worker"
    assert _ingress_peers(worker) == [("monitoring", 9808)]
    ports = {
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]: {
            p["containerPort"] for c in d["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])
        }
        for d in _by_kind("Deployment").values()
    }
    assert ports["web"] == {8000}
    assert ports["worker"] == {9808}

    egress = policies["churn-egress-core"]["spec"]
    allowed = sorted(port["port"] for rule in egress["egress"] for port in rule["ports"])
    assert allowed == [53, 53, 5432, 6379]
    assert all("ipBlock" not in peer for rule in egress["egress"] for peer in rule["to"])
    assert policies["churn-egress-data-sources"]["spec"]["egress"] == []  # the operator lists networks
