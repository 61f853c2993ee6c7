"""``scripts/monitoring.py plan|apply`` against the loopback Monitoring fake."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest
from google.api import label_pb2, metric_pb2  # type: ignore[import-untyped]
from google.api_core import exceptions as gexc
from google.cloud import monitoring_v3

from observability.metrics import METRICS, PREFIX
from tests.support.fake_monitoring import FakeMonitoring

ROOT = Path(__file__).resolve().parents[3]
MON = ROOT / "monitoring"


def config(tmp_path: Path) -> Path:
    cfg = json.loads((MON / "project.example.json").read_text())
    cfg["vars"]["HEALTH_HOST"] = "health.example.com"
    path = tmp_path / "project.json"
    path.write_text(json.dumps(cfg))
    return path


def run(cli: ModuleType, fake: FakeMonitoring, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main([*args, "--project", "demo-mon", "--endpoint", fake.endpoint], out=out)
    return code, out.getvalue()


def counted(text: str) -> tuple[int, int, int]:
    line = next(x for x in text.splitlines() if x.startswith("Plan:"))
    nums = [int(w) for w in line.replace(",", " ").split() if w.isdigit()]
    return nums[0], nums[1], nums[2]


def n_files() -> int:
    return sum(
        len(list((MON / d).glob("*.json")))
        for d in ("log_metrics", "uptime", "alerts", "dashboards")
    )


def test_plan_on_an_empty_project_lists_every_create_and_changes_nothing(
    cli: ModuleType, fake: FakeMonitoring, tmp_path: Path
) -> None:
    code, text = run(cli, fake, "plan", "--config", str(config(tmp_path)))
    assert code == 0, text
    channels = len(json.loads((MON / "project.example.json").read_text())["channels"])
    assert counted(text) == (len(METRICS) + n_files() + channels, 0, 0)
    assert "create     alert policy      External data: error rate above 2% (5 min)" in text
    lines = [x.split() for x in text.splitlines() if x.startswith("  ")]
    # the descriptors come first, one per custom metric of metrics.py, in its order
    assert [x[-1] for x in lines[: len(METRICS)]] == [m.type for m in METRICS]
    assert all(x[:3] == ["create", "metric", "descriptor"] for x in lines[: len(METRICS)])
    assert not any(x[1:3] == ["metric", "descriptor"] for x in lines[len(METRICS) :])
    listed = fake.calls_of("ListMetricDescriptors")
    assert [r.filter for r in listed] == [f'metric.type = starts_with("{PREFIX}")']
    writes = [c for c in fake.calls if not c.method.startswith("List")]
    assert writes == []


def test_apply_then_plan_has_nothing_to_do_and_a_second_apply_changes_nothing(
    cli: ModuleType, fake: FakeMonitoring, tmp_path: Path
) -> None:
    cfg = str(config(tmp_path))
    code, text = run(cli, fake, "apply", "--config", cfg)
    assert code == 0, text
    assert fake.rejections == []
    # every custom metric has its descriptor, as metrics.py defines it
    assert sorted(fake.metric_descriptors) == sorted(m.type for m in METRICS)
    for m in METRICS:
        d = fake.metric_descriptors[m.type]
        assert d.metric_kind == metric_pb2.MetricDescriptor.GAUGE
        assert metric_pb2.MetricDescriptor.ValueType.Name(d.value_type) == m.value_type
        assert [label.key for label in d.labels] == list(m.labels)
        assert d.unit == m.unit and d.description == m.description and d.display_name
    # ... created before any alert policy (the fake, like the API, refuses alerts on a custom
    # type without a descriptor, so the apply above would have failed otherwise)
    methods = [c.method for c in fake.calls]
    created = [i for i, x in enumerate(methods) if x == "CreateMetricDescriptor"]
    alerts = [i for i, x in enumerate(methods) if x == "CreateAlertPolicy"]
    assert len(created) == len(METRICS) and alerts and max(created) < min(alerts)
    assert len(fake.alert_policies) == len(list((MON / "alerts").glob("*.json")))
    assert len(fake.dashboards) == 1 and len(fake.uptime_checks) == 1 and len(fake.channels) == 3
    # alerts notify the channels made in the same apply, by their real names
    for policy in fake.alert_policies.values():
        assert policy.notification_channels
        assert all(c in fake.channels for c in policy.notification_channels)
    health = next(iter(fake.uptime_checks.values()))
    assert health.monitored_resource.labels["host"] == "health.example.com"
    assert health.monitored_resource.labels["project_id"] == "demo-mon"
    before = len(fake.calls)
    code, text = run(cli, fake, "plan", "--config", cfg)
    assert code == 0 and counted(text)[:2] == (0, 0), text
    code, text = run(cli, fake, "apply", "--config", cfg)
    assert code == 0 and "Applied 0 changes." in text
    assert all(c.method.startswith("List") for c in fake.calls[before:])


def test_a_changed_threshold_shows_as_one_update_and_apply_makes_it(
    cli: ModuleType, fake: FakeMonitoring, tmp_path: Path
) -> None:
    cfg = str(config(tmp_path))
    assert run(cli, fake, "apply", "--config", cfg)[0] == 0
    root = tmp_path / "monitoring"
    shutil.copytree(MON, root)
    path = root / "alerts" / "error-rate.json"
    policy = json.loads(path.read_text())
    policy["conditions"][0]["conditionThreshold"]["thresholdValue"] = 0.03
    path.write_text(json.dumps(policy))
    code, text = run(cli, fake, "plan", "--config", cfg, "--root", str(root))
    assert code == 0 and counted(text)[:2] == (0, 1), text
    assert "update     alert policy      External data: error rate above 2% (5 min)" in text
    assert "conditions[0].conditionThreshold.thresholdValue: 0.02 -> 0.03" in text
    code, text = run(cli, fake, "apply", "--config", cfg, "--root", str(root))
    assert code == 0, text
    stored = next(
        p
        for p in fake.alert_policies.values()
        if p.display_name.startswith("External data: error rate")
    )
    assert stored.conditions[0].condition_threshold.threshold_value == 0.03
    assert stored.conditions[0].name  # the condition kept its server-assigned name
    code, text = run(cli, fake, "plan", "--config", cfg, "--root", str(root))
    assert counted(text)[:2] == (0, 0), text


def test_a_changed_descriptor_is_deleted_and_created_again(
    cli: ModuleType, fake: FakeMonitoring, tmp_path: Path
) -> None:
    cfg = str(config(tmp_path))
    assert run(cli, fake, "apply", "--config", cfg)[0] == 0
    answers = METRICS[0]
    stale = fake.metric_descriptors[answers.type]
    stale.description = "an older wording"
    del stale.labels[1:]  # "outcome" missing
    code, text = run(cli, fake, "plan", "--config", cfg)
    assert code == 0 and counted(text)[:2] == (0, 1), text
    assert (
        f"update     metric descriptor {answers.type}  (deleted and re-created: the API "
        "cannot update a descriptor)"
    ) in text
    assert '~ description: "an older wording" -> ' in text
    assert '~ labels: [{"key": "function"}] -> ' in text
    before = len(fake.calls)
    code, text = run(cli, fake, "apply", "--config", cfg)
    assert code == 0 and "Applied 1 change." in text, text
    writes = [(c.method, c.request) for c in fake.calls[before:] if not c.method.startswith("List")]
    assert [m for m, _ in writes] == ["DeleteMetricDescriptor", "CreateMetricDescriptor"]
    assert writes[0][1].name == f"projects/demo-mon/metricDescriptors/{answers.type}"
    fixed = fake.metric_descriptors[answers.type]
    assert fixed.description == answers.description
    assert [label.key for label in fixed.labels] == list(answers.labels)
    assert counted(run(cli, fake, "plan", "--config", cfg)[1])[:2] == (0, 0)


def test_descriptors_outside_metrics_py_are_left_alone_and_named(
    cli: ModuleType, fake: FakeMonitoring, tmp_path: Path
) -> None:
    stray = metric_pb2.MetricDescriptor(
        type=PREFIX + "retired",
        metric_kind=metric_pb2.MetricDescriptor.GAUGE,
        value_type=metric_pb2.MetricDescriptor.INT64,
    )
    fake.clients().metrics.create_metric_descriptor(
        name="projects/demo-mon", metric_descriptor=stray
    )
    cfg = str(config(tmp_path))
    code, text = run(cli, fake, "apply", "--config", cfg)
    assert code == 0, text
    assert f"note: metric descriptor {PREFIX}retired is not defined in metrics.py" in text
    assert PREFIX + "retired" in fake.metric_descriptors


def test_the_fake_refuses_what_the_api_refuses_about_descriptors(fake: FakeMonitoring) -> None:
    c = fake.clients()
    parent = "projects/demo-mon"
    with pytest.raises(gexc.InvalidArgument, match="not a custom metric"):
        c.metrics.create_metric_descriptor(
            name=parent,
            metric_descriptor=metric_pb2.MetricDescriptor(
                type="compute.googleapis.com/instance/cpu/usage_time",
                metric_kind=metric_pb2.MetricDescriptor.GAUGE,
                value_type=metric_pb2.MetricDescriptor.DOUBLE,
            ),
        )
    mtype = PREFIX + "answers"
    policy = monitoring_v3.AlertPolicy(
        display_name="p",
        conditions=[
            monitoring_v3.AlertPolicy.Condition(
                display_name="c",
                condition_threshold=monitoring_v3.AlertPolicy.Condition.MetricThreshold(
                    filter=f'metric.type="{mtype}" AND resource.type="global"',
                    comparison=monitoring_v3.ComparisonType.COMPARISON_GT,
                ),
            )
        ],
    )
    with pytest.raises(gexc.InvalidArgument, match="has no descriptor"):
        c.alerts.create_alert_policy(name=parent, alert_policy=policy)
    made = c.metrics.create_metric_descriptor(
        name=parent,
        metric_descriptor=metric_pb2.MetricDescriptor(
            type=mtype,
            metric_kind=metric_pb2.MetricDescriptor.GAUGE,
            value_type=metric_pb2.MetricDescriptor.INT64,
            labels=[label_pb2.LabelDescriptor(key="function")],
        ),
    )
    assert made.name == f"{parent}/metricDescriptors/{mtype}"
    with pytest.raises(gexc.AlreadyExists):
        c.metrics.create_metric_descriptor(name=parent, metric_descriptor=made)
    assert c.alerts.create_alert_policy(name=parent, alert_policy=policy).name
    listed = c.metrics.list_metric_descriptors(
        request=monitoring_v3.ListMetricDescriptorsRequest(
            name=parent, filter=f'metric.type = starts_with("{PREFIX}")'
        )
    )
    assert [d.type for d in listed] == [mtype]
    c.metrics.delete_metric_descriptor(name=made.name)
    with pytest.raises(gexc.NotFound):
        c.metrics.delete_metric_descriptor(name=made.name)
    assert fake.metric_descriptors == {}


def test_without_config_alerts_notify_nobody_and_plan_says_so(
    cli: ModuleType, fake: FakeMonitoring
) -> None:
    code, text = run(cli, fake, "apply", "--var", "HEALTH_HOST=h.example.com")
    assert code == 0, text
    assert "note: no --config: alert policies will notify nobody" in text
    assert all(not p.notification_channels for p in fake.alert_policies.values())


def test_an_unfilled_placeholder_is_refused_before_any_call(
    cli: ModuleType, fake: FakeMonitoring
) -> None:
    code, text = run(cli, fake, "plan")
    assert code == 1 and "${HEALTH_HOST} has no value" in text
    assert fake.calls == []


def test_a_channel_without_type_must_already_exist(
    cli: ModuleType, fake: FakeMonitoring, tmp_path: Path
) -> None:
    cfg = json.loads(config(tmp_path).read_text())
    cfg["channels"]["oncall"] = {"displayName": "Slack #alerts"}
    path = tmp_path / "slack.json"
    path.write_text(json.dumps(cfg))
    code, text = run(cli, fake, "plan", "--config", str(path))
    assert code == 1 and "'Slack #alerts'" in text and "does not exist" in text


def test_a_misspelled_field_in_a_file_is_refused(
    cli: ModuleType, fake: FakeMonitoring, tmp_path: Path
) -> None:
    root = tmp_path / "monitoring"
    shutil.copytree(MON, root)
    path = root / "uptime" / "health.json"
    path.write_text(path.read_text().replace('"period"', '"perod"'))
    code, text = run(cli, fake, "plan", "--var", "HEALTH_HOST=h", "--root", str(root))
    assert code == 1 and "perod" in text


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_project_is_required(
    cli: ModuleType, command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GCLOUD_PROJECT", raising=False)
    with pytest.raises(SystemExit) as exc:
        cli.main([command], out=io.StringIO())
    assert exc.value.code == 2
