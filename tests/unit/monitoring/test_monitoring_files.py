"""Every file under monitoring/ parses into the API's own type, refers only to metrics that are
defined, carries a runbook, and its log filters match the log lines the functions write."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from google.cloud import monitoring_dashboard_v1, monitoring_v3
from google.cloud.logging.handlers import StructuredLogHandler
from google.cloud.logging_v2 import types as logging_types
from google.protobuf.json_format import ParseError

from observability import metrics as m

ROOT = Path(__file__).resolve().parents[3]
MON = ROOT / "monitoring"
RUNBOOKS = ROOT / "docs" / "runbooks.md"

KINDS: dict[str, Any] = {
    "alerts": monitoring_v3.AlertPolicy,
    "dashboards": monitoring_dashboard_v1.Dashboard,
    "uptime": monitoring_v3.UptimeCheckConfig,
    "log_metrics": logging_types.LogMetric,
}
FILES = [(folder, p) for folder in KINDS for p in sorted((MON / folder).glob("*.json"))]
BUILTIN = {"monitoring.googleapis.com/uptime_check/check_passed"}


def parse(folder: str, path: Path) -> Any:
    return KINDS[folder].from_json(path.read_text(), ignore_unknown_fields=False)


def alerts() -> list[tuple[Path, monitoring_v3.AlertPolicy]]:
    return [(p, parse("alerts", p)) for p in sorted((MON / "alerts").glob("*.json"))]


def log_metrics() -> dict[str, logging_types.LogMetric]:
    out = {}
    for p in sorted((MON / "log_metrics").glob("*.json")):
        metric = parse("log_metrics", p)
        out[metric.name] = metric
    return out


def test_there_is_something_of_every_kind() -> None:
    assert {folder for folder, _ in FILES} == set(KINDS)
    assert len([f for f in FILES if f[0] == "alerts"]) >= 12


@pytest.mark.parametrize(("folder", "path"), FILES, ids=[f"{f}/{p.name}" for f, p in FILES])
def test_file_parses_into_its_official_type_with_no_unknown_field(folder: str, path: Path) -> None:
    message = parse(folder, path)
    assert type(message).to_json(message)  # round-trips


def test_a_misspelled_field_is_refused_by_the_parser() -> None:
    text = (MON / "alerts" / "error-rate.json").read_text().replace('"combiner"', '"combiner_x"')
    with pytest.raises(ParseError, match="combiner_x"):
        monitoring_v3.AlertPolicy.from_json(text, ignore_unknown_fields=False)


_TYPE = re.compile(r'metric\.type\s*=\s*"([^"]+)"')
_LABEL = re.compile(r"metric\.label\.([a-z_]+)")


def referenced_filters(obj: Any) -> list[str]:
    """Every monitoring filter string in a parsed JSON tree."""
    out: list[str] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in ("filter", "denominatorFilter") and isinstance(value, str):
                out.append(value)
            else:
                out.extend(referenced_filters(value))
    elif isinstance(obj, list):
        for item in obj:
            out.extend(referenced_filters(item))
    return out


def test_every_metric_referenced_is_defined_with_the_labels_used() -> None:
    user = {f"logging.googleapis.com/user/{name}": lm for name, lm in log_metrics().items()}
    seen: set[str] = set()
    for folder in ("alerts", "dashboards"):
        for path in sorted((MON / folder).glob("*.json")):
            for flt in referenced_filters(json.loads(path.read_text())):
                types = _TYPE.findall(flt)
                if not types:
                    continue  # a log filter (matched-log condition, logs panel)
                assert len(types) == 1, f"{path.name}: one metric per filter: {flt}"
                mtype = types[0]
                seen.add(mtype)
                if mtype in m.BY_TYPE:
                    allowed = set(m.BY_TYPE[mtype].labels)
                elif mtype in user:
                    allowed = {d.key for d in user[mtype].metric_descriptor.labels}
                else:
                    assert mtype in BUILTIN, f"{path.name}: {mtype} is not defined"
                    continue
                used = set(_LABEL.findall(flt))
                assert used <= allowed, f"{path.name}: {mtype} has no label {used - allowed}"
    # and the dashboards/alerts use the metrics the exporter writes (nothing left unwatched)
    unwatched = {d.type for d in m.METRICS} - seen
    assert not unwatched, f"no alert or dashboard shows {sorted(unwatched)}"


def test_group_by_fields_name_labels_of_their_metric() -> None:
    for folder in ("alerts", "dashboards"):
        for path in sorted((MON / folder).glob("*.json")):
            text = path.read_text()
            for mtype, group in re.findall(
                r'metric\.type=\\"([^"\\]+)\\"[^{}]*?"groupByFields": \[([^\]]*)\]', text, re.S
            ):
                labels = set(re.findall(r"metric\.label\.([a-z_]+)", group))
                if mtype in m.BY_TYPE:
                    assert labels <= set(m.BY_TYPE[mtype].labels), (path.name, mtype, labels)


def test_the_plans_three_alerts_have_its_thresholds() -> None:
    by_name = {p.stem: a for p, a in alerts()}
    err = by_name["error-rate"].conditions[0].condition_threshold
    assert (err.threshold_value, err.aggregations[0].alignment_period.total_seconds()) == (
        0.02,
        300,
    )
    assert 'outcome="error"' in err.filter and err.denominator_filter
    conv = by_name["conversion-low"].conditions[0].condition_threshold
    assert conv.comparison == monitoring_v3.ComparisonType.COMPARISON_LT
    assert (conv.threshold_value, conv.aggregations[0].alignment_period.total_seconds()) == (
        0.10,
        3600,
    )
    una = by_name["unauthorized-attempts"].conditions[0].condition_threshold
    assert (una.threshold_value, una.aggregations[0].alignment_period.total_seconds()) == (20, 600)


def test_kpi_and_slo_alerts() -> None:
    by_name = {p.stem: a for p, a in alerts()}
    warn = by_name["latency-p95-warning"]
    crit = by_name["latency-p95-critical"]
    assert warn.conditions[0].condition_threshold.threshold_value == 3000
    assert crit.conditions[0].condition_threshold.threshold_value == 5000
    assert warn.severity == monitoring_v3.AlertPolicy.Severity.WARNING
    assert crit.severity == monitoring_v3.AlertPolicy.Severity.CRITICAL
    assert by_name["success-rate-low"].conditions[0].condition_threshold.threshold_value == 0.98
    for name, factor, windows in (
        ("slo-burn-fast", 14.4, {3600, 300}),
        ("slo-burn-slow", 6, {21600, 1800}),
    ):
        policy = by_name[name]
        assert policy.combiner == monitoring_v3.AlertPolicy.ConditionCombinerType.AND
        got = {
            c.condition_threshold.aggregations[0].alignment_period.total_seconds()
            for c in policy.conditions
        }
        assert got == windows
        for c in policy.conditions:
            assert c.condition_threshold.threshold_value == pytest.approx(factor * 0.001)
    beat = by_name["evaluator-heartbeat"]
    absent = [c for c in beat.conditions if "condition_absent" in c]
    assert absent and absent[0].condition_absent.duration.total_seconds() == 300


def test_every_alert_has_a_runbook_section_and_named_channels() -> None:
    text = RUNBOOKS.read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^## (.+)$", text, re.M)
    }
    example = json.loads((MON / "project.example.json").read_text())
    for path, policy in alerts():
        content = policy.documentation.content
        found = re.findall(r"docs/runbooks\.md#([a-z0-9-]+)", content)
        assert found, f"{path.name}: no runbook link"
        assert found[0] in anchors, f"{path.name}: no section #{found[0]} in docs/runbooks.md"
        assert len(content) > 80, f"{path.name}: the documentation says too little"
        assert policy.notification_channels, f"{path.name}: notifies nobody"
        for ref in policy.notification_channels:
            assert ref.removeprefix("channel:") in example["channels"], ref


def test_the_example_config_holds_no_secret() -> None:
    config = json.loads((MON / "project.example.json").read_text())
    sensitive = {"auth_token", "password", "service_key", "token", "api_key", "secret"}
    for key, channel in config["channels"].items():
        assert not set(channel.get("labels", {})) & sensitive, key
        assert "sensitiveLabels" not in channel, key


def test_uptime_check_targets_the_health_function() -> None:
    cfg = parse("uptime", MON / "uptime" / "health.json")
    # The host is REGION-PROJECT.cloudfunctions.net, where each function is a path.
    assert cfg.http_check.path == "/externalDataHealth"
    assert cfg.monitored_resource.labels["host"] == "${HEALTH_HOST}"
    assert cfg.period.total_seconds() == 60


# -- log filters against real log lines ----------------------------------------------------


def log_line(
    level: int, message: str, labels: dict[str, str], fields: dict[str, Any]
) -> dict[str, Any]:
    """One record through google-cloud-logging's StructuredLogHandler, as JSON."""
    stream = io.StringIO()
    handler = StructuredLogHandler(stream=stream, project_id="demo-test")
    logger = logging.getLogger(f"test-monitoring-{id(stream)}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.log(level, message, extra={"labels": labels, "json_fields": fields})
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(x) for x in stream.getvalue().splitlines() if x.strip()]
    return next(x for x in lines if x.get("message") == message)


SEVERITIES = ["DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT"]


def as_entry(line: dict[str, Any]) -> dict[str, Any]:
    """What Cloud Logging makes of a structured line: special fields out, the rest jsonPayload."""
    payload = {
        k: v
        for k, v in line.items()
        if k != "severity" and not k.startswith("logging.googleapis.com/")
    }
    return {
        "severity": line.get("severity", "DEFAULT"),
        "labels": line.get("logging.googleapis.com/labels", {}),
        "jsonPayload": payload,
    }


def matches(flt: str, entry: dict[str, Any]) -> bool:
    """The subset of the Logging query language used in monitoring/: clauses joined by AND,
    each ``path="value"``, ``path:*`` or ``severity>=LEVEL``; anything else fails the test."""
    for clause in flt.split(" AND "):
        clause = clause.strip()
        if mm := re.fullmatch(r"severity>=([A-Z]+)", clause):
            if SEVERITIES.index(entry["severity"]) < SEVERITIES.index(mm.group(1)):
                return False
            continue
        if mm := re.fullmatch(r'([A-Za-z_.]+)(=|:)(?:"([^"]*)"|\*)', clause):
            path, op, value = mm.groups()
            cur: Any = entry
            for part in path.split("."):
                cur = cur.get(part) if isinstance(cur, dict) else None
            if op == ":" and cur is None:
                return False
            if op == "=" and cur != value:
                return False
            continue
        pytest.fail(f"filter clause not understood by this test: {clause!r}")
    return True


BASE = {"component": "external-data", "phase": "beta"}
LINES = {
    "granted": (
        logging.INFO,
        {"function": "enrichCVWithExternalData", "outcome": "success"},
        {"event": "access_granted"},
    ),
    "refused": (
        logging.WARNING,
        {"function": "enrichCVWithExternalData", "outcome": "denied"},
        {"event": "unauthorized_access"},
    ),
    "rate_limited": (
        logging.WARNING,
        {"function": "enrichCVWithExternalData", "outcome": "rate_limited"},
        {"event": "rate_limit_exceeded"},
    ),
    "suspicious": (
        logging.WARNING,
        {"function": "detectSuspiciousActivity", "outcome": "finding"},
        {"event": "suspicious_activity"},
    ),
    "crash": (
        logging.ERROR,
        {"function": "enrichCVWithExternalData", "outcome": "internal"},
        {"error": "RuntimeError"},
    ),
    "rollback": (
        logging.CRITICAL,
        {"function": "evaluateExternalDataRollout", "outcome": "rolled_back"},
        {"kind": "automatic_rollback", "trigger": "error-rate"},
    ),
    "breaker": (
        logging.WARNING,
        {"function": "enrichCVWithExternalData", "outcome": "partial"},
        {"kind": "source_breaker", "source": "github", "state": "open"},
    ),
    "cold_start": (
        logging.INFO,
        {"function": "enrichCVWithExternalData", "kind": "cold_start"},
        {"kind": "cold_start", "message": "instance cold start"},
    ),
}
EXPECTED = {
    "external_data_audit_events": {"granted", "refused", "rate_limited", "suspicious"},
    "external_data_unauthorized_access": {"refused"},
    "external_data_rate_limit_exceeded": {"rate_limited"},
    "external_data_suspicious_activity": {"suspicious"},
    "external_data_errors": {"crash", "rollback"},
    "external_data_automatic_rollbacks": {"rollback"},
    "external_data_source_breaker_changes": {"breaker"},
    "external_data_cold_starts": {"cold_start"},
}


def test_log_metric_filters_count_exactly_their_lines() -> None:
    entries = {
        name: as_entry(log_line(level, f"line {name}", {**BASE, **labels}, fields))
        for name, (level, labels, fields) in LINES.items()
    }
    defined = log_metrics()
    assert set(defined) == set(EXPECTED)
    for name, metric in defined.items():
        hit = {line for line, entry in entries.items() if matches(metric.filter, entry)}
        assert hit == EXPECTED[name], name
        for key, extractor in metric.label_extractors.items():
            path = re.fullmatch(r"EXTRACT\(([A-Za-z_.]+)\)", extractor)
            assert path, extractor
            for line in EXPECTED[name]:
                cur: Any = entries[line]
                for part in path.group(1).split("."):
                    cur = cur.get(part) if isinstance(cur, dict) else None
                assert cur, f"{name}.{key}: nothing at {path.group(1)} in the {line} line"


def test_a_line_without_the_component_label_is_not_counted() -> None:
    entry = as_entry(
        log_line(logging.ERROR, "other", {"function": "x"}, {"event": "unauthorized_access"})
    )
    for metric in log_metrics().values():
        assert not matches(metric.filter, entry), metric.name


def test_rollback_alert_matches_the_rollback_line() -> None:
    policy = next(a for p, a in alerts() if p.stem == "automatic-rollback")
    cond = policy.conditions[0].condition_matched_log
    level, labels, fields = LINES["rollback"]
    entry = as_entry(log_line(level, "rollback", {**BASE, **labels}, fields))
    assert matches(cond.filter, entry)
    assert policy.alert_strategy.notification_rate_limit.period.total_seconds() == 300
