"""deploy/prometheus/chip-alerts.yml and deploy/grafana/chip.json: Prometheus accepts every rule and
every dashboard query, the alerts fire on the series they are written for, and every metric and
label they read is one a running chip exports."""

import json
import re
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient
from tornado.testing import bind_unused_port

from tests.servers import ROOT

ALERTS = ROOT / "deploy" / "prometheus" / "chip-alerts.yml"
ALERTS_TEST = ROOT / "tests" / "deploy" / "chip-alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "chip.json"

needs_promtool = pytest.mark.skipif(
    not shutil.which("promtool"), reason="needs promtool (Debian's prometheus package; .ci/run installs it)"
)

# what Grafana puts in place of its variables before it sends a query
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$job": ".*"}
# series Prometheus makes itself for every target, and labels it adds to every series
PROMETHEUS_OWN = {"up"}
TARGET_LABELS = {"job", "instance"}
KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
}


def alert_expressions() -> list[str]:
    """Every `expr:` of the rules file, inline or a folded block (>-) on the lines below it."""
    exprs, lines = [], ALERTS.read_text().splitlines()
    for i, line in enumerate(lines):
        found = re.match(r"(\s*)expr:\s*(.*)$", line)
        if not found:
            continue
        indent, text = len(found.group(1)), found.group(2)
        if text in (">-", ">", "|"):
            block = []
            for following in lines[i + 1 :]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                block.append(following.strip())
            text = " ".join(part for part in block if part)
        exprs.append(text)
    return exprs


def dashboard_expressions() -> list[str]:
    """Every query of the dashboard, its template variables' included, as Grafana sends them."""
    model = json.loads(DASHBOARD.read_text())
    exprs = []
    for panel in model["panels"] + [p for row in model["panels"] for p in row.get("panels", [])]:
        exprs += [target["expr"] for target in panel.get("targets", [])]
    for variable in model["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            exprs.append(re.fullmatch(r"label_values\((.+),\s*\w+\)", query).group(1))
    return [grafana_sends(expr) for expr in exprs]


def grafana_sends(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
    return expr


def references(expr: str) -> tuple[set[str], list[tuple[str, str, str, str]], set[str]]:
    """(metric names, (metric, label, operator, value) of every matcher, labels of by/on clauses)."""
    matchers = []
    for name, inside in re.findall(r"([a-zA-Z_:][\w:]*)?\s*\{([^}]*)\}", expr):
        for label, op, value in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', inside):
            matchers.append((name, label, op, value))
    grouped = set()
    for clause in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr):
        grouped |= {label.strip() for label in clause.split(",") if label.strip()}
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", expr)
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    names = {
        token
        for token in re.findall(r"(?<![\w.:])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", bare)
        if token.lower() not in KEYWORDS
    }
    return names, matchers, grouped


@pytest.fixture
async def exported(chip_process, http):
    """{sample name: {label: values seen}} of a running chip's /metrics, every series a counter or
    histogram makes (_total, _bucket, _sum, _count, _created) included."""
    sock, metrics_port = bind_unused_port()
    sock.close()
    await chip_process("--metrics-port", str(metrics_port)).ready(http)
    text = (await AsyncHTTPClient().fetch(f"http://127.0.0.1:{metrics_port}/metrics")).body.decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = found.setdefault(sample.name, {})
            for label, value in sample.labels.items():
                labels.setdefault(label, set()).add(value)
    return found


def test_the_expressions_are_found():
    """The parsing below reads what it should: one expression per rule, one per dashboard query."""
    assert len(alert_expressions()) == ALERTS.read_text().count("- alert:") >= 10
    model = json.loads(DASHBOARD.read_text())
    assert len(dashboard_expressions()) == sum(len(p.get("targets", [])) for p in model["panels"]) + 1
    names, matchers, grouped = references(
        'sum by (reason) (increase(a_total{job=~"$job", reason="x"}[5m])) '
        "and on (job) b offset 5m / max_over_time(c[1d]) > 0.8"
    )
    assert names == {"a_total", "b", "c"} and grouped == {"reason", "job"}
    assert matchers == [("a_total", "job", "=~", "$job"), ("a_total", "reason", "=", "x")]


async def test_every_metric_and_label_read_is_one_chip_exports(exported):
    missing = []
    for source, exprs in (("chip-alerts.yml", alert_expressions()), ("chip.json", dashboard_expressions())):
        for expr in exprs:
            names, matchers, grouped = references(expr)
            for name in names - PROMETHEUS_OWN:
                if name not in exported:
                    missing.append(f"{source}: {name} in {expr}")
            for name, label, op, value in matchers:
                if label in TARGET_LABELS or name in PROMETHEUS_OWN:
                    continue
                values = exported.get(name, {}).get(label)
                if values is None:
                    missing.append(f"{source}: label {label} of {name} in {expr}")
                elif op == "=" and value not in values:
                    missing.append(f"{source}: {name}{{{label}={value!r}}} (chip has {sorted(values)}) in {expr}")
            known = set(TARGET_LABELS) | {"le"} | {label for name in names for label in exported.get(name, {})}
            missing += [f"{source}: by/on label {label} in {expr}" for label in grouped - known]
    assert missing == []


def test_dashboard_panels_query_the_chosen_prometheus_and_do_not_overlap():
    model = json.loads(DASHBOARD.read_text())
    assert [v["name"] for v in model["templating"]["list"]] == ["datasource", "job"]
    taken = set()
    for panel in model["panels"]:
        box = panel["gridPos"]
        cells = {(x, y) for x in range(box["x"], box["x"] + box["w"]) for y in range(box["y"], box["y"] + box["h"])}
        assert box["x"] + box["w"] <= 24 and not cells & taken, f"panel {panel['title']!r} overlaps another"
        taken |= cells
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]), panel["title"]
    assert len({p["id"] for p in model["panels"]}) == len(model["panels"])


@needs_promtool
def test_promtool_accepts_the_alert_rules():
    result = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_expressions())} rules found" in result.stdout


@needs_promtool
def test_the_alerts_fire_on_the_series_they_are_written_for():
    result = subprocess.run(
        ["promtool", "test", "rules", ALERTS_TEST.name],
        cwd=ALERTS_TEST.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_accepts_every_dashboard_query(tmp_path):
    """Each query, as Grafana sends it, written as a recording rule: promtool parses them all."""
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for n, expr in enumerate(dashboard_expressions()):
        lines += [f"      - record: dashboard:query{n}", f"        expr: {json.dumps(expr)}"]
    rules = tmp_path / "dashboard.yml"
    rules.write_text("\n".join(lines) + "\n")
    result = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
