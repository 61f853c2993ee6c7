#!/usr/bin/env python3
"""The main job: seed users and CVs on the Emulator Suite, then walk the scenarios through the
real callable protocol and print what happened at each step.

    scripts/with-emulators.sh .venv/bin/python scripts/demo.py          (make demo)
    scripts/with-emulators.sh .venv/bin/python scripts/demo.py --serve  (make serve)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

from scripts.devkit.emulator import GATED, Answer, User, call, require_emulators, sign_up, store  # noqa: E402
from scripts.devkit.services import WEBSITE_URL, Services, fixed_port_services  # noqa: E402
from scripts.rollout_story import run as run_rollout_story  # noqa: E402
from stores.base import Write  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
ENRICH = "enrichCVWithExternalData"
BOLD, DIM, GREEN, RED, YELLOW, RESET = (
    ("\033[1m", "\033[2m", "\033[32m", "\033[31m", "\033[33m", "\033[0m")
    if sys.stdout.isatty()
    else ("",) * 6
)


def heading(text: str) -> None:
    print(f"\n{BOLD}== {text} =={RESET}")


def step(text: str) -> None:
    print(f"  {DIM}→{RESET} {text}")


def ok(text: str) -> None:
    print(f"    {GREEN}✓{RESET} {text}")


def refused(text: str) -> None:
    print(f"    {YELLOW}✗{RESET} {text}")


def linkedin_export() -> dict[str, str]:
    folder = FIXTURES / "linkedin" / "complete"
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.csv"))}


def seed_people(s: Any) -> dict[str, tuple[User, str]]:
    """Free, premium, beta and admin users with a CV each."""
    people: dict[str, tuple[User, str]] = {}
    profiles: dict[str, dict[str, Any]] = {
        "free": {"displayName": "Fran Free"},
        "premium": {
            "displayName": "Pat Premium",
            "subscription": {"tier": "premium", "status": "active"},
        },
        "beta": {"displayName": "Bea Beta", "rolloutGroups": ["beta-testers"]},
        "admin": {"displayName": "Ada Admin", "role": "admin"},
    }
    writes = [Write("config/externalDataRollout", {**GATED, "updatedBy": "demo seed"}, merge=False)]
    for role, profile in profiles.items():
        user = sign_up(role, admin=role == "admin")
        cv_id = f"cv-{role}-{user.uid[:8]}"
        people[role] = (user, cv_id)
        writes.append(Write(f"users/{user.uid}", profile, merge=False))
        writes.append(
            Write(
                f"cvs/{cv_id}",
                {"userId": user.uid, "title": f"{profile['displayName']}'s CV"},
                merge=False,
            )
        )
    s.commit(writes)
    return people


def describe_sources(result: dict[str, Any]) -> None:
    for src in result["sources"]:
        note = f" ({src['error']['code']}: {src['error']['message']})" if src.get("error") else ""
        cached = ", cached" if src["cached"] else ""
        print(
            f"      {src['source']:<8} {src['status']:<8} {src['items']:>3} items {src['durationMs']:>5} ms{cached}{note}"
        )


def show_error(answer: Answer) -> None:
    err = answer.error
    refused(f"{err['status']}: {err['message']}")
    for key, value in (err.get("details") or {}).items():
        print(f"      {key}: {value}")


def scenario_free(people: dict[str, tuple[User, str]]) -> None:
    heading("Scenario 1: a free user's journey")
    user, cv = people["free"]
    print(
        f"  Fran is on the free plan (uid {user.uid[:8]}…), CV {cv}; the gate is on for everyone."
    )
    step("Fran asks for a preview of her GitHub enrichment (github: prolific)")
    out = call(
        ENRICH, {"cvId": cv, "mode": "preview", "sources": ["github"], "github": "prolific"}, user
    ).result
    gh = out["enrichedData"].get("github", {})
    ok(
        f"preview served ({out['status']}); {len(gh.get('repos', []))} of {gh.get('totals', {}).get('repos', '?')} repositories shown, locked={gh.get('locked', False)}"
    )
    print(f"      message: {out['messages']['preview']}")
    print(
        f"      usage: {out['usage']['remaining']} of {out['usage']['limit']} enrichments left this hour"
    )
    step("Fran asks for the full enrichment")
    answer = call(ENRICH, {"cvId": cv, "sources": ["github"], "github": "prolific"}, user)
    show_error(answer)
    s = store()
    audits = [
        d["type"] for _, d in s.query("external_data_security_audit", [("uid", "==", user.uid)])
    ]
    events = [d["type"] for _, d in s.query(f"external_data_usage/{user.uid}/events")]
    ok(f"the gate was recorded: audit {sorted(set(audits))}, funnel events {sorted(set(events))}")
    step("Fran clicks the upgrade button (client funnel event)")
    tracked = call("trackExternalDataUsage", {"event": "upgrade_clicked", "cvId": cv}, user).result
    ok(f"event recorded={tracked['recorded']} (id {tracked['eventId'][:8]}…)")


def scenario_premium(people: dict[str, tuple[User, str]]) -> None:
    heading("Scenario 2: a premium user's journey")
    user, cv = people["premium"]
    print(f"  Pat has an active premium subscription (uid {user.uid[:8]}…), CV {cv}.")
    step(
        "Pat enriches the CV from all four sources: GitHub, a LinkedIn export, a website, web search"
    )
    request = {
        "cvId": cv,
        "github": "octocat",
        "website": WEBSITE_URL,
        "linkedin": {"export": linkedin_export()},
        "name": "Ada Lovelace",
    }
    out = call(ENRICH, request, user).result
    ok(f"full enrichment: status {out['status']}, {out['durationMs']} ms")
    describe_sources(out)
    data = out["enrichedData"]
    skills = ", ".join(
        f"{s['name']} ({'+'.join(s['sources'])})" for s in data.get("skills", [])[:6]
    )
    print(f"      top skills: {skills}")
    projects = ", ".join(f"{p['name']}★{p.get('stars', 0)}" for p in data.get("projects", [])[:4])
    print(f"      top projects: {projects}")
    print(f"      message: {out['messages']['welcome']}")
    step("Pat asks again: the answers now come from the cache")
    again = call(ENRICH, request, user).result
    cached = [s["source"] for s in again["sources"] if s["cached"]]
    ok(
        f"{again['durationMs']} ms (first call {out['durationMs']} ms); cached sources: {', '.join(cached) or 'none'}"
    )
    step("Pat looks at the usage stats")
    stats = call("getUserExternalDataUsageStats", {}, user).result
    h, t = stats["hourly"], stats["totals"]
    ok(
        f"tier {stats['tier']}; this hour {h['used']} used, {h['remaining']} of {h['limit']} left; totals {t}"
    )


def scenario_rate_limit(people: dict[str, tuple[User, str]]) -> None:
    heading("Scenario 3: rate limiting")
    user, cv = people["beta"]
    print(f"  Bea (free, beta tester) has {3} enrichments an hour on the free plan.")
    for n in range(1, 5):
        step(f"call {n}: preview from the LinkedIn export")
        answer = call(
            ENRICH,
            {
                "cvId": cv,
                "mode": "preview",
                "sources": ["linkedin"],
                "linkedin": {"export": linkedin_export()},
            },
            user,
        )
        if answer.ok:
            u = answer.result["usage"]
            # A sliding hour: units come back gradually, so there is no single "reset" time.
            ok(f"admitted; {u['remaining']} left in the sliding hour")
        else:
            show_error(answer)


def scenario_admin(people: dict[str, tuple[User, str]]) -> None:
    heading("What the admin sees")
    admin, _ = people["admin"]
    today = time.strftime("%Y-%m-%d", time.gmtime())
    report = call("getExternalDataAnalytics", {"startDate": today, "endDate": today}, admin).result
    t, r = report["totals"], report["rates"]
    ok(
        f"today: {t['requests']} requests, {t['successful']} successful, {t['previews']} previews, "
        f"{t['gateShown']} gates, {t['upgradeClicks']} upgrade clicks, {t['rateLimited']} rate-limited"
    )
    ok(
        f"error rate {r['errorRate']:.0%}, success rate {r['successRate']:.0%}, "
        f"p50/p95 {report['latencyMs']['p50']}/{report['latencyMs']['p95']} ms, "
        f"unauthorized attempts {report['security']['unauthorizedAttempts']}"
    )


def _cli(script: str, *args: str) -> str:
    """Run an operator CLI as an operator would, printing its output indented."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    print(f"  {DIM}$ {script} {' '.join(args)}{RESET}")
    for line in done.stdout.rstrip().splitlines():
        print(f"    {line}")
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{script} {args[0]} exited {done.returncode}: {done.stderr[-500:]}")
    return done.stdout


def scenario_support_and_shadow(people: dict[str, tuple[User, str]]) -> None:
    heading("Support and shadow mode")
    free, free_cv = people["free"]
    step('Fran writes to support: "why can\'t I get the full enrichment?"')
    _cli("support.py", "explain", free.uid)
    step(
        "Before a gate goes on, an operator can watch it in shadow: decided, recorded, nobody refused"
    )
    _cli("rollout.py", "set", "--shadow", "on", "--reason", "demo: see the gate's impact first")
    request = {"cvId": free_cv, "sources": ["linkedin"], "linkedin": {"export": linkedin_export()}}
    deadline = time.monotonic() + 30
    answer = call(ENRICH, request, free)
    while not answer.ok and time.monotonic() < deadline:
        time.sleep(1)
        answer = call(ENRICH, request, free)
    if not answer.ok:
        raise RuntimeError(f"shadow mode did not serve Fran within 30 s: {answer.body}")
    ok(f"Fran asks for full and is served {answer.result['access']} (the gate would have refused)")
    status = _cli("rollout.py", "status")
    if "would refuse" not in status:
        raise RuntimeError("status shows no would-be figures in shadow mode")
    _cli("rollout.py", "set", "--shadow", "off", "--reason", "demo: shadow seen")


def rollout_story(services: Services, s: Any) -> None:
    """The closing rollout story (scripts/rollout_story.py), with this process's running fakes."""
    run_rollout_story(services, s)


def print_serve_help() -> None:
    """`make serve`: where everything listens, how a web client connects, how to run the CLIs."""
    auth = os.environ["FIREBASE_AUTH_EMULATOR_HOST"]
    firestore = os.environ["FIRESTORE_EMULATOR_HOST"]
    fs_host, _, fs_port = firestore.rpartition(":")
    fn_host_port = os.environ["FUNCTIONS_BASE_URL"].split("/")[2]
    fn_host, _, fn_port = fn_host_port.rpartition(":")
    project = os.environ.get("GCLOUD_PROJECT", "demo-cv-enrichment")
    print(f"\n{BOLD}Emulator Suite{RESET} (project {project})")
    print(f"  Auth       http://{auth}")
    print(f"  Firestore  {firestore}")
    print(f"  Functions  {os.environ['FUNCTIONS_BASE_URL']}/<name>")
    print(
        f'\n{BOLD}Firebase JS SDK{RESET} (initializeApp({{projectId: "{project}", apiKey: "any"}}))'
    )
    print(f'  connectAuthEmulator(getAuth(app), "http://{auth}");')
    print(f'  connectFirestoreEmulator(getFirestore(app), "{fs_host}", {fs_port});')
    print(f'  connectFunctionsEmulator(getFunctions(app), "{fn_host}", {fn_port});')
    print(f"\n{BOLD}CLIs against it{RESET} (another terminal, in {ROOT})")
    print(f"  export FIRESTORE_EMULATOR_HOST={firestore}")
    print("  python scripts/rollout.py status")
    print("  python scripts/support.py explain UID")
    print(f"\n{DIM}Ctrl-C stops the emulators.{RESET}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--serve", action="store_true", help="seed, then keep the fakes up until Ctrl-C"
    )
    args = parser.parse_args()
    require_emulators()
    with fixed_port_services() as services:
        s = store()
        people = seed_people(s)
        print(
            f"{BOLD}Seeded{RESET}: "
            + ", ".join(f"{k} ({u.email}, CV {cv})" for k, (u, cv) in people.items())
        )
        if args.serve:
            print("Passwords are in this output only for local use:")
            for role, (u, _cv) in people.items():
                print(f"  {role:<8} {u.email} / {u.password}")
            print_serve_help()
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return 0
        scenario_free(people)
        scenario_premium(people)
        scenario_rate_limit(people)
        scenario_admin(people)
        scenario_support_and_shadow(people)
        rollout_story(services, s)
    print(f"\n{GREEN}Demo finished.{RESET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
