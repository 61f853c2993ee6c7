#!/usr/bin/env python3
"""Monitoring as code: make a project's Cloud Monitoring match ``monitoring/`` (issue 10).

    python scripts/monitoring.py plan  --project P --config monitoring/project.json
    python scripts/monitoring.py apply --project P --config monitoring/project.json

``plan`` reads what exists through the API and prints, per resource, ``create``, ``update``
(with the fields that differ) or ``unchanged``; ``apply`` does the same and then makes the
changes, so a second ``apply`` changes nothing. Resources, in the order they are applied:

    metric descriptors     functions/observability/metrics.py's METRICS   (matched by type)
    notification channels  the config file's "channels" (matched by displayName)
    log-based metrics      monitoring/log_metrics/*.json  (matched by name)
    uptime checks          monitoring/uptime/*.json       (matched by displayName)
    alert policies         monitoring/alerts/*.json       (matched by displayName)
    dashboards             monitoring/dashboards/*.json   (matched by displayName)

The config file (``--config``, alias ``--channels``; see ``monitoring/project.example.json``)
names the notification channels, ``{"channels": {KEY: {displayName, type?, labels?}}}``, and
holds ``{"vars": {NAME: value}}`` for ``${NAME}`` placeholders (``PROJECT_ID`` is always the
project). An alert notifies ``"channel:KEY"`` entries of its ``notificationChannels``. A channel
entry without ``type`` must already exist (Slack, PagerDuty: made in the console, so no token
is ever in a file); without ``--config`` alerts notify nobody, and ``plan`` says so.

"Differs" means: some field set in the file has another value in the project. Fields the
service fills in (names, etags, records, defaults) are not compared, and a field removed from a
file is not noticed (set it to its empty value instead).

Metric descriptors come first: Cloud Monitoring refuses an alert policy whose filter names a
``custom.googleapis.com/...`` type without a descriptor. The API cannot update a descriptor, so
a changed one is deleted and created again (the points already written to it may not
survive that); ``plan`` says so on its line. Descriptors under
``custom.googleapis.com/external_data/`` that ``metrics.py`` does not define are left alone,
and ``plan`` names them.

``--endpoint HOST:PORT`` (or ``MONITORING_ENDPOINT``) talks plain gRPC to that address instead of
Google's (the loopback fake in tests). Exit codes: 0 done, 1 refused (bad file, unresolved
placeholder, ambiguous or missing resource, API error), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from google.api import label_pb2, metric_pb2  # type: ignore[import-untyped]
from google.api_core import exceptions as gexc
from google.cloud import monitoring_dashboard_v1, monitoring_v3
from google.cloud.logging_v2 import types as logging_types
from google.cloud.logging_v2.services.metrics_service_v2 import MetricsServiceV2Client
from google.protobuf.json_format import (  # type: ignore[import-untyped]
    MessageToDict,
    ParseError,
)
from google.protobuf.message import Message  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "functions")]

from observability.metrics import METRICS, PREFIX, MetricDef  # noqa: E402

MONITORING = ROOT / "monitoring"
DESCRIPTOR_FILTER = f'metric.type = starts_with("{PREFIX}")'
OK, REFUSED, USAGE = 0, 1, 2
CHANNEL_REF = "channel:"
_VAR = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


class Refusal(Exception):
    """Something the operator must fix; the message says what (exit 1)."""


# -- the desired state --------------------------------------------------------------------


@dataclass
class Resource:
    """One resource as the files describe it."""

    kind: str
    """metric descriptor, channel, log metric, uptime check, alert policy or dashboard."""
    key: str
    """What it is matched by: displayName (log metrics: name; descriptors: type)."""
    message: Any
    """The official type, parsed with unknown fields refused."""
    source: str
    """Where it came from, for messages."""


@dataclass
class Desired:
    """Everything the files ask for."""

    descriptors: list[Resource] = field(default_factory=list)
    """One per custom metric of ``observability.metrics``."""
    channels: dict[str, Resource] = field(default_factory=dict)
    """Config key -> channel."""
    log_metrics: list[Resource] = field(default_factory=list)
    uptime: list[Resource] = field(default_factory=list)
    alerts: list[Resource] = field(default_factory=list)
    dashboards: list[Resource] = field(default_factory=list)
    channels_configured: bool = False


def substitute(text: str, variables: dict[str, str], source: str) -> str:
    """Fill ``${NAME}`` placeholders (upper-case names only: dashboards' ``${metric.labels.x}``
    legend templates are left alone); an unknown name is refused."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise Refusal(f"{source}: ${{{name}}} has no value (add it to the config's vars)")
        return variables[name]

    return _VAR.sub(one, text)


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _parse(kind: str, cls: Any, path: Path, variables: dict[str, str], key_field: str) -> Resource:
    text = substitute(path.read_text(), variables, _shown(path))
    try:
        message = cls.from_json(text, ignore_unknown_fields=False)
    except (ParseError, ValueError, TypeError) as exc:
        raise Refusal(f"{_shown(path)}: not a valid {cls.__name__}: {exc}") from exc
    key = getattr(message, key_field)
    if not key:
        raise Refusal(f"{_shown(path)}: {key_field} is required")
    return Resource(kind, key, message, _shown(path))


def descriptor_of(metric: MetricDef) -> metric_pb2.MetricDescriptor:
    """The ``MetricDescriptor`` of one custom metric (GAUGE; string labels)."""
    return metric_pb2.MetricDescriptor(
        type=metric.type,
        metric_kind=metric_pb2.MetricDescriptor.MetricKind.GAUGE,
        value_type=metric_pb2.MetricDescriptor.ValueType.Value(str(metric.value_type)),
        labels=[
            label_pb2.LabelDescriptor(key=key, value_type=label_pb2.LabelDescriptor.STRING)
            for key in metric.labels
        ],
        unit=metric.unit,
        description=metric.description,
        display_name=f"External data: {metric.name.replace('_', ' ')}",
    )


def load_desired(
    root: Path,
    project: str,
    config: dict[str, Any] | None,
    extra_vars: dict[str, str] | None = None,
    metrics: Sequence[MetricDef] = METRICS,
) -> Desired:
    """Parse every file under ``root`` (``monitoring/``) with the config's vars and channels
    (``extra_vars`` win over the config's); one descriptor per custom metric of ``metrics``."""
    variables = {"PROJECT_ID": project}
    desired = Desired(channels_configured=config is not None)
    desired.descriptors = [
        Resource(
            "metric descriptor", m.type, descriptor_of(m), "functions/observability/metrics.py"
        )
        for m in metrics
    ]
    if config is not None:
        variables.update({str(k): str(v) for k, v in (config.get("vars") or {}).items()})
        for key, spec in (config.get("channels") or {}).items():
            if not isinstance(spec, dict) or not spec.get("displayName"):
                raise Refusal(f"config: channel {key!r} needs a displayName")
            channel = monitoring_v3.NotificationChannel(
                display_name=spec["displayName"],
                type_=spec.get("type", ""),
                labels=spec.get("labels") or {},
            )
            desired.channels[key] = Resource("channel", spec["displayName"], channel, "config")
    variables.update(extra_vars or {})
    specs: list[tuple[str, str, Any, str, list[Resource]]] = [
        ("log_metrics", "log metric", logging_types.LogMetric, "name", desired.log_metrics),
        ("uptime", "uptime check", monitoring_v3.UptimeCheckConfig, "display_name", desired.uptime),
        ("alerts", "alert policy", monitoring_v3.AlertPolicy, "display_name", desired.alerts),
        (
            "dashboards",
            "dashboard",
            monitoring_dashboard_v1.Dashboard,
            "display_name",
            desired.dashboards,
        ),
    ]
    for folder, kind, cls, key_field, into in specs:
        seen: dict[str, str] = {}
        for path in sorted((root / folder).glob("*.json")):
            res = _parse(kind, cls, path, variables, key_field)
            if res.key in seen:
                raise Refusal(f"{res.source} and {seen[res.key]}: both define {kind} {res.key!r}")
            seen[res.key] = res.source
            into.append(res)
    for res in desired.alerts:
        for ref in res.message.notification_channels:
            if not ref.startswith(CHANNEL_REF):
                raise Refusal(f"{res.source}: notificationChannels entries are 'channel:KEY'")
            if config is not None and ref[len(CHANNEL_REF) :] not in desired.channels:
                raise Refusal(f"{res.source}: {ref} is not in the config's channels")
    return desired


# -- the API ------------------------------------------------------------------------------


@dataclass
class Api:
    """The official clients."""

    metrics: monitoring_v3.MetricServiceClient
    alerts: monitoring_v3.AlertPolicyServiceClient
    uptime: monitoring_v3.UptimeCheckServiceClient
    channels: monitoring_v3.NotificationChannelServiceClient
    dashboards: monitoring_dashboard_v1.DashboardsServiceClient
    log_metrics: MetricsServiceV2Client

    @classmethod
    def connect(cls, endpoint: str | None) -> Api:
        """Google's endpoints with Application Default Credentials, or plain gRPC to
        ``endpoint`` (tests)."""
        if not endpoint:
            return cls(
                monitoring_v3.MetricServiceClient(),
                monitoring_v3.AlertPolicyServiceClient(),
                monitoring_v3.UptimeCheckServiceClient(),
                monitoring_v3.NotificationChannelServiceClient(),
                monitoring_dashboard_v1.DashboardsServiceClient(),
                MetricsServiceV2Client(),
            )
        import grpc  # type: ignore[import-untyped]
        from google.cloud.logging_v2.services.metrics_service_v2.transports import (
            MetricsServiceV2GrpcTransport,
        )
        from google.cloud.monitoring_dashboard_v1.services.dashboards_service.transports import (
            DashboardsServiceGrpcTransport,
        )
        from google.cloud.monitoring_v3.services.alert_policy_service.transports import (
            AlertPolicyServiceGrpcTransport,
        )
        from google.cloud.monitoring_v3.services.metric_service.transports import (
            MetricServiceGrpcTransport,
        )
        from google.cloud.monitoring_v3.services.notification_channel_service.transports import (
            NotificationChannelServiceGrpcTransport,
        )
        from google.cloud.monitoring_v3.services.uptime_check_service.transports import (
            UptimeCheckServiceGrpcTransport,
        )

        def ch() -> Any:
            return grpc.insecure_channel(endpoint)

        return cls(
            monitoring_v3.MetricServiceClient(transport=MetricServiceGrpcTransport(channel=ch())),
            monitoring_v3.AlertPolicyServiceClient(
                transport=AlertPolicyServiceGrpcTransport(channel=ch())
            ),
            monitoring_v3.UptimeCheckServiceClient(
                transport=UptimeCheckServiceGrpcTransport(channel=ch())
            ),
            monitoring_v3.NotificationChannelServiceClient(
                transport=NotificationChannelServiceGrpcTransport(channel=ch())
            ),
            monitoring_dashboard_v1.DashboardsServiceClient(
                transport=DashboardsServiceGrpcTransport(channel=ch())
            ),
            MetricsServiceV2Client(transport=MetricsServiceV2GrpcTransport(channel=ch())),
        )


def _index(kind: str, items: Sequence[Any], key: Callable[[Any], str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        k = key(item)
        if k in out:
            raise Refusal(f"two existing {kind}s are named {k!r}: remove one first")
        out[k] = item
    return out


@dataclass
class Existing:
    """What the project holds, by match key."""

    descriptors: dict[str, metric_pb2.MetricDescriptor]
    """Custom metric descriptors under ``PREFIX``, by type."""
    channels: dict[str, monitoring_v3.NotificationChannel]
    log_metrics: dict[str, logging_types.LogMetric]
    uptime: dict[str, monitoring_v3.UptimeCheckConfig]
    alerts: dict[str, monitoring_v3.AlertPolicy]
    dashboards: dict[str, monitoring_dashboard_v1.Dashboard]

    @classmethod
    def read(cls, api: Api, project: str) -> Existing:
        """List every resource kind (the pagers follow page tokens)."""
        parent = f"projects/{project}"
        return cls(
            _index(
                "metric descriptor",
                list(
                    api.metrics.list_metric_descriptors(
                        request=monitoring_v3.ListMetricDescriptorsRequest(
                            name=parent, filter=DESCRIPTOR_FILTER
                        )
                    )
                ),
                lambda d: d.type,
            ),
            _index(
                "channel",
                list(api.channels.list_notification_channels(name=parent)),
                lambda c: c.display_name,
            ),
            _index(
                "log metric",
                list(api.log_metrics.list_log_metrics(parent=parent)),
                lambda m: m.name,
            ),
            _index(
                "uptime check",
                list(api.uptime.list_uptime_check_configs(parent=parent)),
                lambda c: c.display_name,
            ),
            _index(
                "alert policy",
                list(api.alerts.list_alert_policies(name=parent)),
                lambda p: p.display_name,
            ),
            _index(
                "dashboard",
                list(api.dashboards.list_dashboards(parent=parent)),
                lambda d: d.display_name,
            ),
        )


# -- comparing ----------------------------------------------------------------------------


def plain(message: Any) -> dict[str, Any]:
    """The message as its proto JSON dict (camelCase, defaults left out)."""
    raw = message if isinstance(message, Message) else type(message).pb(message)
    result: dict[str, Any] = MessageToDict(raw)
    return result


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if value is not None else "(unset)"
    return text if len(text) <= 70 else text[:67] + "..."


def differences(want: Any, have: Any, path: str = "") -> list[str]:
    """Where ``have`` does not hold what ``want`` sets: ``path: old -> new`` lines. Lists must
    have the same length and match item by item; keys only ``have`` has are ignored."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return [f"{path or '(all)'}: {_short(have)} -> {_short(want)}"]
        out: list[str] = []
        for key, value in want.items():
            out.extend(differences(value, have.get(key), f"{path}.{key}" if path else key))
        return out
    if isinstance(want, list):
        if not isinstance(have, list) or len(have) != len(want):
            return [f"{path}: {_short(have)} -> {_short(want)}"]
        out = []
        for i, (w, h) in enumerate(zip(want, have, strict=True)):
            out.extend(differences(w, h, f"{path}[{i}]"))
        return out
    return [] if want == have else [f"{path}: {_short(have)} -> {_short(want)}"]


@dataclass
class Step:
    """What plan/apply does with one resource."""

    kind: str
    key: str
    action: str
    """create, update or unchanged."""
    changes: list[str] = field(default_factory=list)
    apply: Callable[[], Any] | None = None
    how: str = ""
    """Said on the plan line (a descriptor's update is a delete and a create)."""


# -- planning -----------------------------------------------------------------------------


def plan(api: Api, project: str, desired: Desired) -> tuple[list[Step], list[str]]:
    """The steps, in apply order, and notes for the operator."""
    parent = f"projects/{project}"
    have = Existing.read(api, project)
    steps: list[Step] = []
    notes: list[str] = []

    def step(
        kind: str,
        key: str,
        want: Any,
        existing: Any | None,
        create: Any,
        update: Any,
        how: str = "",
    ) -> None:
        if existing is None:
            steps.append(Step(kind, key, "create", [], create))
            return
        diff = differences(plain(want), plain(existing))
        if diff:
            steps.append(Step(kind, key, "update", diff, update, how))
        else:
            steps.append(Step(kind, key, "unchanged"))

    # Descriptors first: an alert policy naming a custom metric type without a descriptor is
    # refused. There is no update: a changed descriptor is deleted and created again.
    for res in desired.descriptors:
        old_d = have.descriptors.get(res.key)

        def create_descriptor(want: Any = res.message) -> None:
            api.metrics.create_metric_descriptor(name=parent, metric_descriptor=want)

        def recreate_descriptor(want: Any = res.message, old: Any = old_d) -> None:
            api.metrics.delete_metric_descriptor(
                name=old.name or f"{parent}/metricDescriptors/{old.type}"
            )
            api.metrics.create_metric_descriptor(name=parent, metric_descriptor=want)

        step(
            "metric descriptor",
            res.key,
            res.message,
            old_d,
            create_descriptor,
            recreate_descriptor,
            "deleted and re-created: the API cannot update a descriptor",
        )
    wanted_types = {res.key for res in desired.descriptors}
    for mtype in sorted(set(have.descriptors) - wanted_types):
        notes.append(f"metric descriptor {mtype} is not defined in metrics.py; left alone")

    # Channels first: alerts need their names. A channel to be created has no name yet, so
    # an alert notifying it is planned with a stand-in and shows as a change.
    channel_names: dict[str, str] = {}
    for ckey, res in desired.channels.items():
        want = res.message
        old = have.channels.get(res.key)
        if old is not None:
            channel_names[ckey] = old.name
        if old is None and not want.type_:
            raise Refusal(
                f"channel {res.key!r} ({ckey}) has no type in the config and does not exist: "
                "create it in the console or give its type and labels"
            )
        if not want.type_:
            steps.append(Step("channel", res.key, "unchanged"))
            continue

        def make_channel(want: Any = want, ckey: str = ckey) -> None:
            made = api.channels.create_notification_channel(name=parent, notification_channel=want)
            channel_names[ckey] = made.name

        def update_channel(want: Any = want, old: Any = old) -> None:
            new = monitoring_v3.NotificationChannel(want)
            new.name = old.name
            api.channels.update_notification_channel(notification_channel=new)

        step("channel", res.key, want, old, make_channel, update_channel)
    if not desired.channels_configured:
        notes.append("no --config: alert policies will notify nobody")

    for res in desired.log_metrics:
        old_m = have.log_metrics.get(res.key)
        step(
            "log metric",
            res.key,
            res.message,
            old_m,
            lambda m=res.message: api.log_metrics.create_log_metric(parent=parent, metric=m),
            lambda m=res.message: api.log_metrics.update_log_metric(
                metric_name=f"{parent}/metrics/{m.name}", metric=m
            ),
        )

    for res in desired.uptime:
        old_u = have.uptime.get(res.key)

        def update_uptime(want: Any = res.message, old: Any = old_u) -> None:
            new = monitoring_v3.UptimeCheckConfig(want)
            new.name = old.name
            api.uptime.update_uptime_check_config(uptime_check_config=new)

        step(
            "uptime check",
            res.key,
            res.message,
            old_u,
            lambda u=res.message: api.uptime.create_uptime_check_config(
                parent=parent, uptime_check_config=u
            ),
            update_uptime,
        )

    for res in desired.alerts:
        refs = [r[len(CHANNEL_REF) :] for r in res.message.notification_channels]

        def resolved(want: Any = res.message, refs: list[str] = refs) -> monitoring_v3.AlertPolicy:
            policy = monitoring_v3.AlertPolicy(want)
            del policy.notification_channels[:]
            if desired.channels_configured:
                policy.notification_channels.extend(
                    channel_names.get(r, f"(new channel {r})") for r in refs
                )
            return policy

        old_p = have.alerts.get(res.key)

        def create_alert(resolved: Callable[[], Any] = resolved) -> None:
            api.alerts.create_alert_policy(name=parent, alert_policy=resolved())

        def update_alert(resolved: Callable[[], Any] = resolved, old: Any = old_p) -> None:
            new = resolved()
            new.name = old.name
            if len(new.conditions) == len(old.conditions):
                for cond, old_cond in zip(new.conditions, old.conditions, strict=True):
                    cond.name = old_cond.name
            api.alerts.update_alert_policy(alert_policy=new)

        step("alert policy", res.key, resolved(), old_p, create_alert, update_alert)

    for res in desired.dashboards:
        old_d = have.dashboards.get(res.key)

        def update_dashboard(want: Any = res.message, old: Any = old_d) -> None:
            new = monitoring_dashboard_v1.Dashboard(want)
            new.name, new.etag = old.name, old.etag
            api.dashboards.update_dashboard(
                request=monitoring_dashboard_v1.UpdateDashboardRequest(dashboard=new)
            )

        step(
            "dashboard",
            res.key,
            res.message,
            old_d,
            lambda d=res.message: api.dashboards.create_dashboard(parent=parent, dashboard=d),
            update_dashboard,
        )
    return steps, notes


def render(steps: Sequence[Step], notes: Sequence[str], out: IO[str]) -> None:
    """The readable diff."""
    for s in steps:
        how = f"  ({s.how})" if s.how else ""
        out.write(f"  {s.action:<10} {s.kind:<17} {s.key}{how}\n")
        for line in s.changes:
            out.write(f"{'':<31}~ {line}\n")
    for note in notes:
        out.write(f"note: {note}\n")
    counts = {a: sum(1 for s in steps if s.action == a) for a in ("create", "update", "unchanged")}
    out.write(
        f"Plan: {counts['create']} to create, {counts['update']} to update, "
        f"{counts['unchanged']} unchanged.\n"
    )


# -- command line -------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="monitoring.py",
        description="Make a project's Cloud Monitoring match monitoring/ (plan shows, apply does).",
        epilog="Exit codes: 0 done, 1 refused, 2 usage error.",
    )
    ap.add_argument("command", choices=("plan", "apply"))
    ap.add_argument("--project", default=os.environ.get("GCLOUD_PROJECT"), help="project id")
    ap.add_argument(
        "--config",
        "--channels",
        dest="config",
        type=Path,
        help="channels and vars (see monitoring/project.example.json)",
    )
    ap.add_argument(
        "--var", action="append", default=[], metavar="NAME=VALUE", help="a placeholder"
    )
    ap.add_argument(
        "--endpoint",
        default=os.environ.get("MONITORING_ENDPOINT"),
        help="plain gRPC HOST:PORT instead of Google's API (tests); env MONITORING_ENDPOINT",
    )
    ap.add_argument("--root", type=Path, default=MONITORING, help=argparse.SUPPRESS)
    return ap


def main(argv: Sequence[str] | None = None, out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    ap = build_parser()
    args = ap.parse_args(argv)
    if not args.project:
        ap.error("--project is required (or GCLOUD_PROJECT)")
    try:
        config: dict[str, Any] | None = None
        if args.config is not None:
            try:
                config = json.loads(args.config.read_text())
            except (OSError, ValueError) as exc:
                raise Refusal(f"{args.config}: {exc}") from exc
        extra: dict[str, str] = {}
        for pair in args.var:
            name, sep, value = pair.partition("=")
            if not sep:
                ap.error(f"--var {pair!r}: expected NAME=VALUE")
            extra[name] = value
        desired = load_desired(args.root, args.project, config, extra)
        api = Api.connect(args.endpoint)
        steps, notes = plan(api, args.project, desired)
        out.write(f"{args.command} for project {args.project}:\n")
        render(steps, notes, out)
        if args.command == "apply":
            done = 0
            for s in steps:
                if s.apply is not None:
                    s.apply()
                    done += 1
            out.write(f"Applied {done} change{'s' if done != 1 else ''}.\n")
    except Refusal as exc:
        out.write(f"refused: {exc}\n")
        return REFUSED
    except gexc.GoogleAPICallError as exc:
        out.write(f"refused by the API: {type(exc).__name__}: {exc.message}\n")
        return REFUSED
    return OK


if __name__ == "__main__":
    sys.exit(main())
