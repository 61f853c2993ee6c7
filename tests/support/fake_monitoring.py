"""A loopback fake of the Cloud Monitoring (and Logging metrics) gRPC API for tests.

One ``grpc`` server on 127.0.0.1 serves, with the API's own request and response types:

- ``google.monitoring.v3.MetricService/CreateTimeSeries``, validated as the API validates it
  (below); accepted points are kept per series in ``FakeMonitoring.points``;
- ``MetricService`` List/Create/DeleteMetricDescriptor (``google.api.MetricDescriptor``, kept by
  type in ``metric_descriptors``): only ``custom.googleapis.com/`` types may be created or
  deleted, a kind and a value type are required, an existing type is ``ALREADY_EXISTS`` (change
  one by deleting it first; the points written to it go with it), and the list filter understands
  ``metric.type = "T"`` and ``metric.type = starts_with("P")``. The first write of a custom type
  without a descriptor creates one, as the API does;
- List/Get/Create/Update/Delete of ``AlertPolicyService``, ``UptimeCheckService``,
  ``NotificationChannelService``, ``google.monitoring.dashboard.v1.DashboardsService`` and
  ``google.logging.v2.MetricsServiceV2`` (log-based metrics), keeping what is created in memory
  and assigning names, condition names, etags and mutation records as the API does. Like the
  API, an alert policy whose filters name a ``custom.googleapis.com/...`` type that has no
  descriptor is refused (``INVALID_ARGUMENT``), so whoever creates alerts must create the
  descriptors first.

The real client libraries talk to it through their gRPC transports (``FakeMonitoring.clients``).
Every request is decoded by the API's ``deserialize``; anything the API would refuse aborts with
``INVALID_ARGUMENT`` (or ``NOT_FOUND``/``ALREADY_EXISTS``/``ABORTED``), which the client raises as
the matching ``google.api_core.exceptions`` error. Every call is appended to ``calls`` and every
refusal to ``rejections``.

CreateTimeSeries rules enforced (from the API reference): ``name`` is ``projects/<id>``; 1..200
series per call; a series appears once per call; the metric type starts with
``custom.googleapis.com/``; a resource type is given; exactly one point per series; kind GAUGE
(custom metrics cannot be DELTA; CUMULATIVE is not used here) with no start time or one equal
to the end time; the value's field matches the series' value type, and a metric type keeps the
value type and label keys of its first write (the auto-created descriptor); a point must be
later than the series' previous point and at least 5 s after it (the sampling limit). The real
API writes the valid series of a partly invalid call; the fake writes none of them, which only
makes tests stricter.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc  # type: ignore[import-untyped]
from google.api import label_pb2, metric_pb2  # type: ignore[import-untyped]
from google.cloud import monitoring_dashboard_v1, monitoring_v3
from google.cloud.logging_v2 import types as logging_types
from google.cloud.logging_v2.services.metrics_service_v2 import MetricsServiceV2Client
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

MAX_SERIES = 200
CUSTOM_PREFIX = "custom.googleapis.com/"
MIN_SAMPLE_GAP = timedelta(seconds=5)

_EMPTY = b""
_CUSTOM_TYPE = re.compile(r"custom\.googleapis\.com/[A-Za-z0-9_./-]*")
_TYPE_FILTER = re.compile(
    r'^\s*metric\.type\s*=\s*(?:"([^"]*)"|starts_with\(\s*"([^"]*)"\s*\))\s*$'
)


class Refused(Exception):
    """Raised inside a handler: becomes the gRPC status ``code`` with ``message``."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _bad(message: str) -> Refused:
    return Refused(grpc.StatusCode.INVALID_ARGUMENT, message)


@dataclass
class Call:
    """One RPC the fake answered (or refused)."""

    method: str
    request: Any


@dataclass
class Descriptor:
    """What the first write of a custom metric type fixed."""

    value_type: int
    label_keys: frozenset[str]


@dataclass
class Clients:
    """Real client libraries pointed at the fake."""

    metrics: monitoring_v3.MetricServiceClient
    alerts: monitoring_v3.AlertPolicyServiceClient
    uptime: monitoring_v3.UptimeCheckServiceClient
    channels: monitoring_v3.NotificationChannelServiceClient
    dashboards: monitoring_dashboard_v1.DashboardsServiceClient
    log_metrics: MetricsServiceV2Client


@dataclass
class FakeMonitoring:
    """The fake's state; ``start()`` serves it on 127.0.0.1 and returns the port."""

    calls: list[Call] = field(default_factory=list)
    rejections: list[tuple[str, str]] = field(default_factory=list)
    points: dict[tuple[Any, ...], list[tuple[datetime, Any]]] = field(default_factory=dict)
    """Series key (metric type, metric labels, resource type, resource labels) -> points."""
    descriptors: dict[str, Descriptor] = field(default_factory=dict)
    """Custom type -> value type and label keys its writes must match (from its descriptor)."""
    metric_descriptors: dict[str, metric_pb2.MetricDescriptor] = field(default_factory=dict)
    """Custom type -> its ``MetricDescriptor`` (created, or made by the type's first write)."""
    alert_policies: dict[str, monitoring_v3.AlertPolicy] = field(default_factory=dict)
    uptime_checks: dict[str, monitoring_v3.UptimeCheckConfig] = field(default_factory=dict)
    channels: dict[str, monitoring_v3.NotificationChannel] = field(default_factory=dict)
    dashboards: dict[str, monitoring_dashboard_v1.Dashboard] = field(default_factory=dict)
    log_metrics: dict[str, logging_types.LogMetric] = field(default_factory=dict)
    port: int = 0
    _server: grpc.Server | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1000))

    # -- server --------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> int:
        """Serve on a free loopback port."""
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers(self._handlers())
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        return self.port

    def stop(self) -> None:
        """Stop serving (waits for calls in flight)."""
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    def clients(self) -> Clients:
        """The official clients, each on its own insecure channel to the fake."""

        def ch() -> grpc.Channel:
            return grpc.insecure_channel(self.endpoint)

        return Clients(
            metrics=monitoring_v3.MetricServiceClient(
                transport=MetricServiceGrpcTransport(channel=ch())
            ),
            alerts=monitoring_v3.AlertPolicyServiceClient(
                transport=AlertPolicyServiceGrpcTransport(channel=ch())
            ),
            uptime=monitoring_v3.UptimeCheckServiceClient(
                transport=UptimeCheckServiceGrpcTransport(channel=ch())
            ),
            channels=monitoring_v3.NotificationChannelServiceClient(
                transport=NotificationChannelServiceGrpcTransport(channel=ch())
            ),
            dashboards=monitoring_dashboard_v1.DashboardsServiceClient(
                transport=DashboardsServiceGrpcTransport(channel=ch())
            ),
            log_metrics=MetricsServiceV2Client(
                transport=MetricsServiceV2GrpcTransport(channel=ch())
            ),
        )

    def calls_of(self, method: str) -> list[Any]:
        """Requests of one method (e.g. ``"CreateTimeSeries"``) that were accepted or refused."""
        return [c.request for c in self.calls if c.method == method]

    def _wrap(
        self, method: str, fn: Callable[[Any], Any], req_type: Any, resp_type: Any
    ) -> grpc.RpcMethodHandler:
        def handler(request: Any, context: grpc.ServicerContext) -> Any:
            with self._lock:
                self.calls.append(Call(method, request))
                try:
                    response = fn(request)
                except Refused as exc:
                    self.rejections.append((method, exc.message))
                    context.abort(exc.code, exc.message)
            return response

        serialize: Callable[[Any], bytes]
        if resp_type is None:
            serialize = lambda _r: _EMPTY  # noqa: E731
        elif hasattr(resp_type, "serialize"):  # proto-plus types
            serialize = resp_type.serialize
        else:  # plain protobuf (google.api.MetricDescriptor)
            serialize = resp_type.SerializeToString
        return grpc.unary_unary_rpc_method_handler(
            handler, request_deserializer=req_type.deserialize, response_serializer=serialize
        )

    def _handlers(self) -> tuple[grpc.GenericRpcHandler, ...]:
        m3, db, lg = monitoring_v3, monitoring_dashboard_v1, logging_types
        services: dict[str, dict[str, tuple[Callable[[Any], Any], Any, Any]]] = {
            "google.monitoring.v3.MetricService": {
                "CreateTimeSeries": (self._create_time_series, m3.CreateTimeSeriesRequest, None),
                "ListMetricDescriptors": (
                    self._list_descriptors,
                    m3.ListMetricDescriptorsRequest,
                    m3.ListMetricDescriptorsResponse,
                ),
                "CreateMetricDescriptor": (
                    self._create_descriptor,
                    m3.CreateMetricDescriptorRequest,
                    metric_pb2.MetricDescriptor,
                ),
                "DeleteMetricDescriptor": (
                    self._delete_descriptor,
                    m3.DeleteMetricDescriptorRequest,
                    None,
                ),
            },
            "google.monitoring.v3.AlertPolicyService": {
                "ListAlertPolicies": (
                    self._list_alerts,
                    m3.ListAlertPoliciesRequest,
                    m3.ListAlertPoliciesResponse,
                ),
                "GetAlertPolicy": (self._get_alert, m3.GetAlertPolicyRequest, m3.AlertPolicy),
                "CreateAlertPolicy": (
                    self._create_alert,
                    m3.CreateAlertPolicyRequest,
                    m3.AlertPolicy,
                ),
                "UpdateAlertPolicy": (
                    self._update_alert,
                    m3.UpdateAlertPolicyRequest,
                    m3.AlertPolicy,
                ),
                "DeleteAlertPolicy": (self._delete_alert, m3.DeleteAlertPolicyRequest, None),
            },
            "google.monitoring.v3.UptimeCheckService": {
                "ListUptimeCheckConfigs": (
                    self._list_uptime,
                    m3.ListUptimeCheckConfigsRequest,
                    m3.ListUptimeCheckConfigsResponse,
                ),
                "CreateUptimeCheckConfig": (
                    self._create_uptime,
                    m3.CreateUptimeCheckConfigRequest,
                    m3.UptimeCheckConfig,
                ),
                "UpdateUptimeCheckConfig": (
                    self._update_uptime,
                    m3.UpdateUptimeCheckConfigRequest,
                    m3.UptimeCheckConfig,
                ),
            },
            "google.monitoring.v3.NotificationChannelService": {
                "ListNotificationChannels": (
                    self._list_channels,
                    m3.ListNotificationChannelsRequest,
                    m3.ListNotificationChannelsResponse,
                ),
                "CreateNotificationChannel": (
                    self._create_channel,
                    m3.CreateNotificationChannelRequest,
                    m3.NotificationChannel,
                ),
                "UpdateNotificationChannel": (
                    self._update_channel,
                    m3.UpdateNotificationChannelRequest,
                    m3.NotificationChannel,
                ),
            },
            "google.monitoring.dashboard.v1.DashboardsService": {
                "ListDashboards": (
                    self._list_dashboards,
                    db.ListDashboardsRequest,
                    db.ListDashboardsResponse,
                ),
                "GetDashboard": (self._get_dashboard, db.GetDashboardRequest, db.Dashboard),
                "CreateDashboard": (
                    self._create_dashboard,
                    db.CreateDashboardRequest,
                    db.Dashboard,
                ),
                "UpdateDashboard": (
                    self._update_dashboard,
                    db.UpdateDashboardRequest,
                    db.Dashboard,
                ),
            },
            "google.logging.v2.MetricsServiceV2": {
                "ListLogMetrics": (
                    self._list_log_metrics,
                    lg.ListLogMetricsRequest,
                    lg.ListLogMetricsResponse,
                ),
                "GetLogMetric": (self._get_log_metric, lg.GetLogMetricRequest, lg.LogMetric),
                "CreateLogMetric": (
                    self._create_log_metric,
                    lg.CreateLogMetricRequest,
                    lg.LogMetric,
                ),
                "UpdateLogMetric": (
                    self._update_log_metric,
                    lg.UpdateLogMetricRequest,
                    lg.LogMetric,
                ),
            },
        }
        return tuple(
            grpc.method_handlers_generic_handler(
                service,
                {
                    name: self._wrap(name, fn, req, resp)
                    for name, (fn, req, resp) in methods.items()
                },
            )
            for service, methods in services.items()
        )

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _project(name: str) -> str:
        parts = name.split("/")
        if len(parts) != 2 or parts[0] != "projects" or not parts[1]:
            raise _bad(f"expected projects/PROJECT, got {name!r}")
        return parts[1]

    def _new_id(self) -> str:
        return str(next(self._ids))

    @staticmethod
    def _in_project(name: str, parent: str) -> bool:
        return name.startswith(parent + "/")

    # -- MetricService -------------------------------------------------------------------

    def _create_time_series(self, req: monitoring_v3.CreateTimeSeriesRequest) -> None:
        self._project(req.name)
        n = len(req.time_series)
        if n == 0:
            raise _bad("at least one TimeSeries is required")
        if n > MAX_SERIES:
            raise _bad(f"{n} TimeSeries in one request; the limit is {MAX_SERIES}")
        seen: set[tuple[Any, ...]] = set()
        staged: list[tuple[tuple[Any, ...], datetime, Any, str, Descriptor]] = []
        gauge, unspecified_kind = metric_pb2.MetricDescriptor.GAUGE, 0
        for i, ts in enumerate(req.time_series):
            where = f"timeSeries[{i}]"
            mtype = ts.metric.type
            if not mtype.startswith(CUSTOM_PREFIX) or len(mtype) <= len(CUSTOM_PREFIX):
                raise _bad(f"{where}: metric type {mtype!r} is not a custom metric")
            if not ts.resource.type:
                raise _bad(f"{where}: a monitored resource type is required")
            key = (
                mtype,
                tuple(sorted(ts.metric.labels.items())),
                ts.resource.type,
                tuple(sorted(ts.resource.labels.items())),
            )
            if key in seen:
                raise _bad(f"{where}: the same time series appears twice in one request")
            seen.add(key)
            if len(ts.points) != 1:
                raise _bad(f"{where}: exactly one point per time series, got {len(ts.points)}")
            if int(ts.metric_kind) not in (gauge, unspecified_kind):
                raise _bad(f"{where}: only GAUGE is used for custom metrics here")
            point = ts.points[0]
            end = point.interval.end_time
            if not end or end.timestamp() == 0:
                raise _bad(f"{where}: the point's end time is required")
            start = point.interval.start_time
            if start and start.timestamp() != 0 and start != end:
                raise _bad(f"{where}: a GAUGE point's start time must equal its end time")
            which = monitoring_v3.TypedValue.pb(point.value).WhichOneof("value")
            value_of = {
                "int64_value": metric_pb2.MetricDescriptor.INT64,
                "double_value": metric_pb2.MetricDescriptor.DOUBLE,
                "bool_value": metric_pb2.MetricDescriptor.BOOL,
            }
            if which not in value_of:
                raise _bad(f"{where}: unsupported or missing point value ({which})")
            vtype = value_of[which]
            declared = ts.value_type
            if declared and int(declared) != vtype:
                raise _bad(f"{where}: value type {int(declared)} but the point holds {which}")
            desc = self.descriptors.get(mtype) or Descriptor(
                int(vtype), frozenset(ts.metric.labels)
            )
            if desc.value_type != int(vtype):
                raise _bad(f"{where}: {mtype} was created with another value type")
            if desc.label_keys != frozenset(ts.metric.labels):
                raise _bad(f"{where}: labels of {mtype} differ from its descriptor")
            previous = self.points.get(key)
            end_dt = end.astimezone(UTC)
            if previous:
                last = previous[-1][0]
                if end_dt <= last:
                    raise _bad(
                        f"{where}: points must be written in order; {end_dt.isoformat()} "
                        f"is not after {last.isoformat()}"
                    )
                if end_dt - last < MIN_SAMPLE_GAP:
                    raise _bad(f"{where}: written more often than the 5 s sampling limit")
            value = getattr(point.value, which)
            staged.append((key, end_dt, value, mtype, desc))
        for key, end_dt, value, mtype, desc in staged:
            if mtype not in self.descriptors:  # the first write creates the descriptor
                self.descriptors[mtype] = desc
                self.metric_descriptors[mtype] = metric_pb2.MetricDescriptor(
                    name=f"{req.name}/metricDescriptors/{mtype}",
                    type=mtype,
                    metric_kind=gauge,
                    value_type=desc.value_type,
                    labels=[label_pb2.LabelDescriptor(key=k) for k in sorted(desc.label_keys)],
                )
            self.points.setdefault(key, []).append((end_dt, value))

    def _list_descriptors(
        self, req: monitoring_v3.ListMetricDescriptorsRequest
    ) -> monitoring_v3.ListMetricDescriptorsResponse:
        self._project(req.name)
        exact = prefix = None
        if req.filter:
            match = _TYPE_FILTER.match(req.filter)
            if match is None:
                raise _bad(f"this fake does not understand the filter {req.filter!r}")
            exact, prefix = match.group(1), match.group(2)
        found = [
            d
            for t, d in sorted(self.metric_descriptors.items())
            if self._in_project(d.name, req.name)
            and (exact is None or t == exact)
            and (prefix is None or t.startswith(prefix))
        ]
        return monitoring_v3.ListMetricDescriptorsResponse(metric_descriptors=found)

    def _create_descriptor(
        self, req: monitoring_v3.CreateMetricDescriptorRequest
    ) -> metric_pb2.MetricDescriptor:
        self._project(req.name)
        desc = metric_pb2.MetricDescriptor()
        desc.CopyFrom(req.metric_descriptor)
        mtype = desc.type
        if not mtype.startswith(CUSTOM_PREFIX) or len(mtype) <= len(CUSTOM_PREFIX):
            raise _bad(f"metric type {mtype!r} is not a custom metric ({CUSTOM_PREFIX}...)")
        if desc.metric_kind == metric_pb2.MetricDescriptor.METRIC_KIND_UNSPECIFIED:
            raise _bad(f"{mtype}: metric_kind is required")
        if desc.metric_kind == metric_pb2.MetricDescriptor.DELTA:
            raise _bad(f"{mtype}: custom metrics cannot be DELTA")
        if desc.value_type == metric_pb2.MetricDescriptor.VALUE_TYPE_UNSPECIFIED:
            raise _bad(f"{mtype}: value_type is required")
        keys = [label.key for label in desc.labels]
        if any(not k for k in keys) or len(set(keys)) != len(keys):
            raise _bad(f"{mtype}: label keys must be given and distinct")
        if mtype in self.metric_descriptors:
            raise Refused(grpc.StatusCode.ALREADY_EXISTS, f"{mtype}: delete it first")
        desc.name = f"{req.name}/metricDescriptors/{mtype}"
        self.metric_descriptors[mtype] = desc
        self.descriptors[mtype] = Descriptor(int(desc.value_type), frozenset(keys))
        return desc

    def _delete_descriptor(self, req: monitoring_v3.DeleteMetricDescriptorRequest) -> None:
        parent, sep, mtype = req.name.partition("/metricDescriptors/")
        self._project(parent)
        if not sep or not mtype.startswith(CUSTOM_PREFIX):
            raise _bad(f"only custom metric descriptors can be deleted, not {req.name!r}")
        desc = self.metric_descriptors.get(mtype)
        if desc is None or desc.name != req.name:
            raise Refused(grpc.StatusCode.NOT_FOUND, req.name)
        del self.metric_descriptors[mtype]
        self.descriptors.pop(mtype, None)
        for key in [k for k in self.points if k[0] == mtype]:
            del self.points[key]

    def series(self, metric_type: str, **labels: str) -> list[tuple[datetime, Any]]:
        """Points written to the series of ``metric_type`` with exactly these metric labels."""
        want = tuple(sorted(labels.items()))
        for key, pts in self.points.items():
            if key[0] == metric_type and key[1] == want:
                return pts
        return []

    # -- AlertPolicyService --------------------------------------------------------------

    def _stamp(self) -> monitoring_v3.MutationRecord:
        return monitoring_v3.MutationRecord(
            mutate_time=datetime.now(UTC), mutated_by="fake-monitoring"
        )

    def _check_policy(self, policy: monitoring_v3.AlertPolicy, parent: str) -> None:
        if not policy.display_name:
            raise _bad("alert policy display_name is required")
        if not 1 <= len(policy.conditions) <= 6:
            raise _bad("an alert policy has 1 to 6 conditions")
        if len(policy.conditions) > 1 and not policy.combiner:
            raise _bad("a combiner is required with more than one condition")
        for cond in policy.conditions:
            if not cond.display_name:
                raise _bad("every condition needs a display_name")
            for mtype in self._custom_types(cond):
                if mtype not in self.metric_descriptors:
                    raise _bad(
                        f"condition {cond.display_name!r}: metric type {mtype} has no "
                        "descriptor (create it, or write a point, first)"
                    )
        for channel in policy.notification_channels:
            if channel not in self.channels or not self._in_project(channel, parent):
                raise Refused(grpc.StatusCode.NOT_FOUND, f"notification channel {channel}")

    @staticmethod
    def _custom_types(cond: monitoring_v3.AlertPolicy.Condition) -> set[str]:
        """Custom metric types named in a condition's filters and queries (prefixes ending in
        ``/``, as in ``starts_with``, are not types)."""
        texts = [
            cond.condition_threshold.filter,
            cond.condition_threshold.denominator_filter,
            cond.condition_absent.filter,
            cond.condition_monitoring_query_language.query,
            cond.condition_prometheus_query_language.query,
        ]
        return {t for text in texts for t in _CUSTOM_TYPE.findall(text) if not t.endswith("/")}

    def _list_alerts(
        self, req: monitoring_v3.ListAlertPoliciesRequest
    ) -> monitoring_v3.ListAlertPoliciesResponse:
        self._project(req.name)
        found = [p for n, p in self.alert_policies.items() if self._in_project(n, req.name)]
        return monitoring_v3.ListAlertPoliciesResponse(alert_policies=found, total_size=len(found))

    def _get_alert(self, req: monitoring_v3.GetAlertPolicyRequest) -> monitoring_v3.AlertPolicy:
        if req.name not in self.alert_policies:
            raise Refused(grpc.StatusCode.NOT_FOUND, req.name)
        return self.alert_policies[req.name]

    def _create_alert(
        self, req: monitoring_v3.CreateAlertPolicyRequest
    ) -> monitoring_v3.AlertPolicy:
        self._project(req.name)
        policy = monitoring_v3.AlertPolicy(req.alert_policy)
        if policy.name:
            raise _bad("the policy name is assigned by the service")
        self._check_policy(policy, req.name)
        policy.name = f"{req.name}/alertPolicies/{self._new_id()}"
        for cond in policy.conditions:
            cond.name = f"{policy.name}/conditions/{self._new_id()}"
        policy.creation_record = self._stamp()
        policy.mutation_record = policy.creation_record
        self.alert_policies[policy.name] = policy
        return policy

    def _update_alert(
        self, req: monitoring_v3.UpdateAlertPolicyRequest
    ) -> monitoring_v3.AlertPolicy:
        new = monitoring_v3.AlertPolicy(req.alert_policy)
        old = self.alert_policies.get(new.name)
        if old is None:
            raise Refused(grpc.StatusCode.NOT_FOUND, new.name or "(no name)")
        if req.update_mask.paths:
            raise _bad("this fake replaces whole policies; send an empty update_mask")
        self._check_policy(new, new.name.split("/alertPolicies/")[0])
        known = {c.name for c in old.conditions}
        for cond in new.conditions:
            if cond.name and cond.name not in known:
                raise _bad(f"unknown condition {cond.name}")
            if not cond.name:
                cond.name = f"{new.name}/conditions/{self._new_id()}"
        new.creation_record = old.creation_record
        new.mutation_record = self._stamp()
        self.alert_policies[new.name] = new
        return new

    def _delete_alert(self, req: monitoring_v3.DeleteAlertPolicyRequest) -> None:
        if self.alert_policies.pop(req.name, None) is None:
            raise Refused(grpc.StatusCode.NOT_FOUND, req.name)

    # -- UptimeCheckService --------------------------------------------------------------

    @staticmethod
    def _check_uptime(cfg: monitoring_v3.UptimeCheckConfig) -> None:
        if not cfg.display_name:
            raise _bad("uptime check display_name is required")
        if "http_check" not in cfg and "tcp_check" not in cfg:
            raise _bad("an uptime check needs http_check or tcp_check")
        if "monitored_resource" not in cfg and "resource_group" not in cfg:
            raise _bad("an uptime check needs a monitored_resource or resource_group")
        period = cfg.period.total_seconds() if cfg.period else 60
        if period not in (60, 300, 600, 900):
            raise _bad("period must be 60s, 300s, 600s or 900s")

    def _list_uptime(
        self, req: monitoring_v3.ListUptimeCheckConfigsRequest
    ) -> monitoring_v3.ListUptimeCheckConfigsResponse:
        self._project(req.parent)
        found = [c for n, c in self.uptime_checks.items() if self._in_project(n, req.parent)]
        return monitoring_v3.ListUptimeCheckConfigsResponse(
            uptime_check_configs=found, total_size=len(found)
        )

    def _create_uptime(
        self, req: monitoring_v3.CreateUptimeCheckConfigRequest
    ) -> monitoring_v3.UptimeCheckConfig:
        self._project(req.parent)
        cfg = monitoring_v3.UptimeCheckConfig(req.uptime_check_config)
        self._check_uptime(cfg)
        cfg.name = f"{req.parent}/uptimeCheckConfigs/{self._new_id()}"
        self.uptime_checks[cfg.name] = cfg
        return cfg

    def _update_uptime(
        self, req: monitoring_v3.UpdateUptimeCheckConfigRequest
    ) -> monitoring_v3.UptimeCheckConfig:
        cfg = monitoring_v3.UptimeCheckConfig(req.uptime_check_config)
        if cfg.name not in self.uptime_checks:
            raise Refused(grpc.StatusCode.NOT_FOUND, cfg.name or "(no name)")
        if req.update_mask.paths:
            raise _bad("this fake replaces whole configs; send an empty update_mask")
        self._check_uptime(cfg)
        self.uptime_checks[cfg.name] = cfg
        return cfg

    # -- NotificationChannelService ------------------------------------------------------

    def _list_channels(
        self, req: monitoring_v3.ListNotificationChannelsRequest
    ) -> monitoring_v3.ListNotificationChannelsResponse:
        self._project(req.name)
        found = [c for n, c in self.channels.items() if self._in_project(n, req.name)]
        return monitoring_v3.ListNotificationChannelsResponse(
            notification_channels=found, total_size=len(found)
        )

    def _create_channel(
        self, req: monitoring_v3.CreateNotificationChannelRequest
    ) -> monitoring_v3.NotificationChannel:
        self._project(req.name)
        ch = monitoring_v3.NotificationChannel(req.notification_channel)
        if not ch.type_ or not ch.display_name:
            raise _bad("a notification channel needs a type and a display_name")
        ch.name = f"{req.name}/notificationChannels/{self._new_id()}"
        self.channels[ch.name] = ch
        return ch

    def _update_channel(
        self, req: monitoring_v3.UpdateNotificationChannelRequest
    ) -> monitoring_v3.NotificationChannel:
        ch = monitoring_v3.NotificationChannel(req.notification_channel)
        if ch.name not in self.channels:
            raise Refused(grpc.StatusCode.NOT_FOUND, ch.name or "(no name)")
        self.channels[ch.name] = ch
        return ch

    # -- DashboardsService ---------------------------------------------------------------

    @staticmethod
    def _check_dashboard(d: monitoring_dashboard_v1.Dashboard) -> None:
        if not d.display_name:
            raise _bad("dashboard display_name is required")
        if not any(k in d for k in ("grid_layout", "mosaic_layout", "row_layout", "column_layout")):
            raise _bad("a dashboard needs a layout")

    def _list_dashboards(
        self, req: monitoring_dashboard_v1.ListDashboardsRequest
    ) -> monitoring_dashboard_v1.ListDashboardsResponse:
        self._project(req.parent)
        found = [d for n, d in self.dashboards.items() if self._in_project(n, req.parent)]
        return monitoring_dashboard_v1.ListDashboardsResponse(dashboards=found)

    def _get_dashboard(
        self, req: monitoring_dashboard_v1.GetDashboardRequest
    ) -> monitoring_dashboard_v1.Dashboard:
        if req.name not in self.dashboards:
            raise Refused(grpc.StatusCode.NOT_FOUND, req.name)
        return self.dashboards[req.name]

    def _create_dashboard(
        self, req: monitoring_dashboard_v1.CreateDashboardRequest
    ) -> monitoring_dashboard_v1.Dashboard:
        self._project(req.parent)
        d = monitoring_dashboard_v1.Dashboard(req.dashboard)
        self._check_dashboard(d)
        d.name = d.name or f"{req.parent}/dashboards/{self._new_id()}"
        if d.name in self.dashboards:
            raise Refused(grpc.StatusCode.ALREADY_EXISTS, d.name)
        d.etag = self._new_id()
        if not req.validate_only:
            self.dashboards[d.name] = d
        return d

    def _update_dashboard(
        self, req: monitoring_dashboard_v1.UpdateDashboardRequest
    ) -> monitoring_dashboard_v1.Dashboard:
        d = monitoring_dashboard_v1.Dashboard(req.dashboard)
        old = self.dashboards.get(d.name)
        if old is None:
            raise Refused(grpc.StatusCode.NOT_FOUND, d.name or "(no name)")
        if d.etag and d.etag != old.etag:
            raise Refused(grpc.StatusCode.ABORTED, "etag mismatch: the dashboard changed")
        self._check_dashboard(d)
        d.etag = self._new_id()
        if not req.validate_only:
            self.dashboards[d.name] = d
        return d

    # -- Logging MetricsServiceV2 --------------------------------------------------------

    @staticmethod
    def _check_log_metric(metric: logging_types.LogMetric) -> None:
        if not metric.name or "/" in metric.name:
            raise _bad("a log metric name is required (no slashes)")
        if not metric.filter:
            raise _bad("a log metric needs a filter")

    def _list_log_metrics(
        self, req: logging_types.ListLogMetricsRequest
    ) -> logging_types.ListLogMetricsResponse:
        self._project(req.parent)
        found = [m for key, m in self.log_metrics.items() if self._in_project(key, req.parent)]
        return logging_types.ListLogMetricsResponse(metrics=found)

    def _get_log_metric(self, req: logging_types.GetLogMetricRequest) -> logging_types.LogMetric:
        if req.metric_name not in self.log_metrics:
            raise Refused(grpc.StatusCode.NOT_FOUND, req.metric_name)
        return self.log_metrics[req.metric_name]

    def _create_log_metric(
        self, req: logging_types.CreateLogMetricRequest
    ) -> logging_types.LogMetric:
        self._project(req.parent)
        metric = logging_types.LogMetric(req.metric)
        self._check_log_metric(metric)
        key = f"{req.parent}/metrics/{metric.name}"
        if key in self.log_metrics:
            raise Refused(grpc.StatusCode.ALREADY_EXISTS, key)
        now = datetime.now(UTC)
        metric.create_time = now
        metric.update_time = now
        self.log_metrics[key] = metric
        return metric

    def _update_log_metric(
        self, req: logging_types.UpdateLogMetricRequest
    ) -> logging_types.LogMetric:
        metric = logging_types.LogMetric(req.metric)
        self._check_log_metric(metric)
        parent, _, name = req.metric_name.rpartition("/metrics/")
        self._project(parent)
        if name != metric.name:
            raise _bad("metric_name and metric.name differ")
        old = self.log_metrics.get(req.metric_name)
        now = datetime.now(UTC)
        metric.create_time = old.create_time if old is not None else now
        metric.update_time = now
        self.log_metrics[req.metric_name] = metric
        return metric


@contextmanager
def running() -> Iterator[FakeMonitoring]:
    """A started fake, stopped afterwards."""
    fake = FakeMonitoring()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
