"""The load harness's own logic: the nothing-lost checker finds each kind of difference (and
accepts records the function logged as lost during a fault), the per-document write rates and
per-call cost, exact percentiles and the knee, and the callable-protocol classification."""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from loadtests import check, counting, report
from loadtests.protocol import classify


def balanced(n_ok: int = 10, refused: int = 2) -> tuple[check.Client, check.Server]:
    """Answers and records that agree: ``n_ok`` enrichments and ``refused`` refusals."""
    ids = {f"r{i}" for i in range(n_ok)}
    client = check.Client(Counter({"OK": n_ok, "PERMISSION_DENIED": refused}), set(ids))
    c = Counter(
        {"requests": n_ok + refused, "previews": 3, "fullRequests": n_ok - 3, "denied": refused}
    )
    server = check.Server(
        events=Counter({"success": n_ok, "denied": refused}),
        event_ids=set(ids) | {"d0", "d1"},
        enriched_ids=set(ids),
        audits=Counter({"access_granted": n_ok, "unauthorized_access": refused}),
        agg={"raw": c, "m": Counter(requests=5), "h": Counter(requests=5)},
        read={"m": Counter(c), "h": Counter(c), "d": Counter(c)},
        rate_units=n_ok,
    )
    return client, server


def test_balanced_books_pass() -> None:
    assert check.compare(*balanced()) == []


def test_an_admitted_answer_without_its_records_is_reported() -> None:
    client, server = balanced()
    server.events["success"] -= 1
    server.enriched_ids.discard("r3")
    server.agg["raw"]["fullRequests"] -= 1
    for g in "mhd":
        server.read[g]["fullRequests"] -= 1
    problems = check.compare(client, server)
    assert any(
        p.startswith("admitted enrichments differ: answers 10, events 9, aggregates 9")
        for p in problems
    )
    assert "1 admitted answers have no usage event, e.g. ['r3']" in problems


def test_a_refusal_without_its_audit_entry_is_reported() -> None:
    client, server = balanced()
    server.audits["unauthorized_access"] -= 1
    assert check.compare(client, server) == ["refusals differ: answers 2, audit 1, aggregates 2"]


def test_every_granularity_as_read_must_agree_with_the_raw_shards() -> None:
    client, server = balanced()
    server.read["d"]["requests"] += 1
    server.read["h"]["previews"] -= 1
    assert check.compare(client, server) == [
        "h aggregates as read differ from the raw shards: previews 2 vs 3",
        "d aggregates as read differ from the raw shards: requests 13 vs 12",
    ]


def test_internal_answers_and_transport_failures_fail_the_run() -> None:
    client, server = balanced()
    client.kinds["INTERNAL"] += 1
    client.kinds["TRANSPORT"] += 1
    problems = check.compare(client, server)
    assert "internal: 1 answers, 0 events" in problems
    assert "1 calls got no answer (transport)" in problems


def test_records_logged_as_lost_balance_a_fault_run() -> None:
    client, server = balanced()
    client.kinds["UNAVAILABLE"] += 2
    client.ok_ids.add("late")
    client.kinds["OK"] += 1
    log = [
        json.dumps(
            {
                "message": check.LOST_MESSAGE,
                "fn": check.ENRICH,
                "requestId": "u1",
                "outcome": "unavailable",
            }
        ),
        json.dumps(
            {
                "message": check.LOST_MESSAGE,
                "fn": check.ENRICH,
                "requestId": "u2",
                "outcome": "unavailable",
            }
        ),
        json.dumps(
            {
                "message": check.LOST_MESSAGE,
                "fn": check.ENRICH,
                "requestId": "late",
                "outcome": "success",
            }
        ),
        # logged, but the commit was applied once the store came back: not lost
        json.dumps(
            {
                "message": check.LOST_MESSAGE,
                "fn": check.ENRICH,
                "requestId": "r1",
                "outcome": "success",
            }
        ),
        "plain text line",
    ]
    server.rate_units += (
        3  # "late" took one; two more were taken by calls then answered unavailable
    )
    lost = check.read_lost(log, server.event_ids)
    assert lost.ids == {"u1", "u2", "late"}
    assert check.compare(client, server, lost) == []
    assert check.compare(client, server) != []  # without the log, the same books differ


def test_an_admission_without_its_rate_limit_unit_is_a_free_pass() -> None:
    client, server = balanced()
    server.rate_units -= 1
    assert check.compare(client, server) == [
        "free passes: 10 admitted answers, 9 rate-limit units taken"
    ]
    server.rate_units += 2
    assert check.compare(client, server) == ["11 rate-limit units taken for 10 admitted answers"]


def test_sustained_rate_is_the_busiest_minute() -> None:
    per_s = dict.fromkeys(range(0, 120), 2) | dict.fromkeys(range(200, 230), 5)
    assert counting._sustained(per_s) == pytest.approx(2.5)  # 150 writes in 200..259 / 60
    assert counting._sustained({5: 60}) == 1.0


def test_analyse_merges_the_workers_and_prices_a_call(tmp_path: Path) -> None:
    for pid, n in ((1, 3), (2, 4)):
        (tmp_path / f"ops-{pid}.json").write_text(
            json.dumps({"reads": 10 * n, "writes": 20 * n, "rt.commit": n})
        )
        lines = [{"s": 100, "w": {"external_data_metrics/raw_x_1": n, "rate_limits/u_enrich": 1}}]
        (tmp_path / f"writes-{pid}.jsonl").write_text(
            "\n".join(json.dumps(x) for x in lines) + "\n"
        )
    cost = counting.analyse(tmp_path, calls=7)
    assert cost.per_call("reads") == 10 and cost.per_call("writes") == 20
    assert cost.usd_per_million(0.06, 0.18) == pytest.approx(1e6 * (10 * 0.06 + 20 * 0.18) / 1e5)
    hottest = cost.by_kind["aggregate raw minute shard"]
    assert (hottest.peak_per_s, hottest.total) == (7, 7)
    assert cost.by_kind["rate-limit window"].peak_per_s == 2
    assert cost.per_worker == [4, 3]
    assert cost.spread() == "57% / 43%"
    assert "calls per worker process (record commits): 57% / 43% (4 / 3)" in report.cost_section(
        cost
    )


def test_documents_written_once_are_never_counted_as_hot_spots() -> None:
    from datetime import UTC, datetime

    from stores import schema

    at = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    once = [schema.usage_event_path("u", "e1"), schema.conversion_path("u", "c1")]
    once.append(schema.audit_path("a1"))
    again = [schema.usage_path("u"), schema.result_path("cv"), schema.raw_shard_path(at, 3)]
    again += [schema.rate_limit_path("u", "enrich", at), schema.cache_path("github_x")]
    assert all(schema.created_once(p) for p in once)
    assert not any(schema.created_once(p) for p in again)
    sink = counting.Sink("/nonexistent")
    sink.pid = os.getpid()  # no flush thread: the counts are read here
    sink.count("commit", writes=[*once, *again])
    assert sink.ops["writes"] == 8
    assert set(next(iter(sink.per_second.values()))) == set(again)


def test_percentiles_are_nearest_rank_and_the_knee_is_the_first_broken_step() -> None:
    values = sorted(float(v) for v in range(1, 101))
    assert (report.percentile(values, 0.5), report.percentile(values, 0.95)) == (50.0, 95.0)
    ok = report.PhaseStats(30, 100, 3000, 100.0, 10, 50, 80, Counter({"OK": 3000}))
    slow = report.PhaseStats(30, 200, 6000, 199.0, 10, 400, 900, Counter({"OK": 6000}))
    behind = report.PhaseStats(30, 300, 5000, 166.0, 10, 200, 300, Counter({"OK": 5000}))
    assert report.knee([ok, slow, behind], 250, 0.01) is slow
    assert report.knee([ok, behind], 250, 0.01) is behind
    assert report.knee([ok], 250, 0.01) is None


@pytest.mark.parametrize(
    ("status", "text", "kind"),
    [
        (200, '{"result": {"access": "full"}}', "OK"),
        (503, '{"error": {"status": "UNAVAILABLE", "message": "retry"}}', "UNAVAILABLE"),
        (500, "<html>oops</html>", "HTTP 500"),
        (0, None, "TRANSPORT"),
    ],
)
def test_answers_are_classified_by_the_callable_protocol(
    status: int, text: str | None, kind: str
) -> None:
    assert classify(status, text)[0] == kind


def test_the_recorded_command_is_the_one_that_ran() -> None:
    from loadtests.run import PROFILES, parse
    from loadtests.summary import _argv

    # A profile run with defaults is `make load PROFILE=...`; any other option is named.
    assert _argv(parse(["--profile", "peak5x", "--arrival", "open"])) == [
        "--profile",
        "peak5x",
        "--arrival",
        "open",
    ]
    args = parse(["--profile", "hundred", "--workers", "4", "--threads", "4", "--sample"])
    args.arrival, args.mix, args.fresh = "open", PROFILES["hundred"].mix, 0.1  # as run.main does
    argv = _argv(args)
    assert argv[4:] == ["--workers", "4", "--threads", "4", "--sample"]
    args.fresh = 0.5
    assert _argv(args)[4:] == ["--workers", "4", "--threads", "4", "--fresh", "0.5", "--sample"]
    args.sources = "linkedin"
    assert "--sources linkedin" in " ".join(_argv(args))


def test_the_sources_a_run_asks_for_are_checked_and_said_in_words() -> None:
    from loadtests.run import parse
    from loadtests.summary import _sources_text

    assert parse([]).sources == "github,linkedin"
    assert parse(["--sources", " linkedin , web"]).sources == "linkedin,web"
    for bad in ("", "linkedin,linkedin", "twitter", "github,,x"):
        with pytest.raises(SystemExit):
            parse(["--sources", bad])
    assert _sources_text("linkedin", 20) == "LinkedIn (the export parsed locally)"
    assert _sources_text("github,linkedin,web", 20) == (
        "GitHub (loopback fake answering after 20 ms), LinkedIn (the export parsed locally)"
        " and web search (loopback fake answering after 20 ms)"
    )


def test_gil_samples_are_summed_per_frame_and_ours_are_told_apart(tmp_path: Path) -> None:
    from loadtests import gil_profile

    # py-spy's raw format: frames root first, `function (path:line)`, then the sample count.
    (tmp_path / "gil-1.txt").write_text(
        "run (threading.py:1);handle (usecases/hooks.py:9);dumps (json/__init__.py:2) 3\n"
        "run (threading.py:1);handle (usecases/hooks.py:9);handle (usecases/hooks.py:9) 1\n"
    )
    stack = b"run (threading.py:1);_blocking (grpc/_channel.py:7) 4\n"
    (tmp_path / "gil-2.txt.gz").write_bytes(gzip.compress(stack))  # as docs/benchmarks/gil keeps
    prof = gil_profile.load(sorted(tmp_path.glob("gil-*")))
    assert prof.samples == 8
    # A frame twice on one stack (recursion) counts once for that stack.
    assert prof.inclusive["handle (hooks.py)"] == 4 and prof.share("run (threading.py)") == 1.0
    assert prof.leaf == Counter({"dumps (__init__.py)": 3, "handle (hooks.py)": 1,
                                 "_blocking (_channel.py)": 4})  # fmt: skip
    assert prof.ours == {"handle (hooks.py)"}
    page = "\n".join(gil_profile.markdown(prof, seconds=40))
    assert "| `handle (hooks.py)` | 50.0% | | `_blocking (_channel.py)` | 50.0% |" in page
    after = gil_profile.load([tmp_path / "gil-2.txt.gz"])
    table = gil_profile.compare(prof, after)
    # Largest moves first (ties by name); a frame that did not move comes last.
    assert table[2:] == [
        "| `_blocking (_channel.py)` | 50.0% | 100.0% |",
        "| `handle (hooks.py)` | 50.0% | 0.0% |",
        "| `dumps (__init__.py)` | 37.5% | 0.0% |",
        "| `run (threading.py)` | 100.0% | 100.0% |",
    ]
