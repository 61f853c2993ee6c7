"""Personal website source: crawl limits, robots.txt, extraction, SSRF guard (issue: "Personal website")."""

from __future__ import annotations

import json
from typing import Any

import pytest

from enrichment.engine import EnrichmentInput
from enrichment.model import EnrichmentResult
from enrichment.sources.website import WebsiteSource, normalise_url
from scripts.devkit.fakes import FakeService, Reply, fake_website
from tests.unit.enrichment.helpers import error_of, make_engine

HTML = {"Content-Type": "text/html; charset=utf-8"}


def crawl(
    url: FakeService,
    *,
    allow: tuple[str, ...] | None = None,
    website: str | None = None,
    **overrides: Any,
) -> EnrichmentResult:
    engine = make_engine(
        sources={"website": WebsiteSource()},
        allow_hosts=allow if allow is not None else (url.host_port,),
        **overrides,
    )
    return engine.enrich(
        EnrichmentInput(sources=("website",), website=website or str(url), timeout_ms=3000)
    )


def test_site_is_crawled_and_described() -> None:
    with fake_website() as url:
        result = crawl(url)
        paths = [r.path for r in url.requests]
    report = result.sources[0]
    assert report.status == "success"
    site = result.data["website"]
    assert site["title"] == "Ada Lovelace"  # OpenGraph wins over <title>
    assert site["description"].startswith("Staff engineer")
    assert (
        site["person"]["name"] == "Ada Lovelace" and site["person"]["jobTitle"] == "Staff Engineer"
    )
    names = {p["name"] for p in site["projects"]}
    assert {"kube-tools", "Engine Simulator", "Hello World", "Note G: Bernoulli numbers"} <= names
    posts = {p["title"]: p for p in site["posts"]}
    assert posts["Shipping a billing API in Go"]["publishedAt"] == "2025-03-01T09:00:00Z"
    assert "Kubernetes notes" in posts
    kinds = {c["kind"] for c in site["contactLinks"]}
    assert kinds == {"github", "linkedin", "mastodon", "stackoverflow"}
    assert "Kubernetes" in site["skills"]
    assert report.items == len(site["projects"]) + len(site["posts"]) + len(site["contactLinks"])
    assert paths[0] == "/robots.txt"
    assert "/cv.pdf" not in paths and not any("elsewhere" in p for p in paths)


def test_robots_txt_is_obeyed() -> None:
    with fake_website() as url:
        crawl(url)
        assert not any(r.path.startswith("/private/") for r in url.requests)


def test_robots_txt_forbidding_us_refuses_the_site() -> None:
    routes = {
        "/robots.txt": Reply(
            200, "User-agent: cv-enrichment\nDisallow: /\n", {"Content-Type": "text/plain"}
        )
    }
    with fake_website(routes=routes) as url:
        report = crawl(url).sources[0]
        assert url.hits("/") == 0
    assert (report.status, error_of(report).code) == ("failed", "refused")


def test_no_email_or_phone_leaves_the_source() -> None:
    with fake_website() as url:
        text = json.dumps(crawl(url).data["website"])
    assert "ada@example.org" not in text and "7946" not in text and "mailto:" not in text
    assert "tel:" not in text


def test_page_limit_is_respected() -> None:
    with fake_website() as url:
        result = crawl(url, website_max_pages=3)
        pages = [r.path for r in url.requests if r.path != "/robots.txt"]
    assert len(pages) == 3 and len(result.data["website"]["pages"]) == 3


def test_oversized_start_page_fails_without_reading_it_all() -> None:
    big = "<html><body>" + "x" * 3_000_000 + "</body></html>"
    routes = {"/": Reply(200, big, HTML, send_length=False)}  # no Content-Length: streamed
    with fake_website(routes=routes) as url:
        report = crawl(url, website_max_page_bytes=100_000).sources[0]
    assert (report.status, error_of(report).code) == ("failed", "upstream")
    assert "100000 bytes" in error_of(report).message


def test_oversized_inner_page_is_skipped() -> None:
    routes = {"/about": Reply(200, "<p>" + "y" * 200_000, HTML)}
    with fake_website(routes=routes) as url:
        result = crawl(url, website_max_page_bytes=100_000)
    assert result.sources[0].status == "success"
    assert result.data["website"]["skippedPages"] == 1


def test_malformed_html_fails_as_upstream() -> None:
    routes = {"/": Reply(200, bytes(range(256)) * 40, HTML)}
    with fake_website(routes=routes) as url:
        report = crawl(url).sources[0]
    assert (report.status, error_of(report).code) == ("failed", "upstream")


def test_non_html_start_page_fails_as_upstream() -> None:
    routes = {"/": Reply(200, {"not": "html"})}
    with fake_website(routes=routes) as url:
        report = crawl(url).sources[0]
    assert (report.status, error_of(report).code) == ("failed", "upstream")


def test_missing_page_is_not_found() -> None:
    with fake_website() as url:
        report = crawl(url, website=f"{url}/nothing-here").sources[0]
    assert (report.status, error_of(report).code) == ("failed", "not_found")


def test_redirect_within_the_allowed_server_is_followed() -> None:
    with fake_website(routes={"/old": Reply(301, "", {"Location": "/"})}) as url:
        result = crawl(url, website=f"{url}/old")
    assert result.sources[0].status == "success"
    assert result.data["website"]["url"] == f"{url}/"


def test_redirects_to_private_or_metadata_addresses_are_refused_before_connecting() -> None:
    targets = [
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://10.0.0.1/admin",
        "http://[fd00:ec2::254]/",
        "http://192.168.1.1/",
    ]
    for target in targets:
        with fake_website(routes={"/": Reply(302, "", {"Location": target})}) as url:
            report = crawl(url).sources[0]
        assert (report.status, error_of(report).code) == ("failed", "refused"), target


def test_redirect_to_another_loopback_port_is_refused() -> None:
    with fake_website() as other:
        with fake_website(routes={"/": Reply(302, "", {"Location": f"{other}/"})}) as url:
            report = crawl(url).sources[0]  # allow-list names only url's host:port
        assert other.requests == []
    assert error_of(report).code == "refused"


def test_redirect_to_localhost_by_name_is_refused() -> None:
    with fake_website(routes={"/": Reply(302, "", {"Location": "http://localhost:1/"})}) as url:
        report = crawl(url).sources[0]
    assert error_of(report).code == "refused"


def test_loopback_site_is_refused_without_an_allow_list() -> None:
    with fake_website() as url:
        report = crawl(url, allow=()).sources[0]
        assert url.requests == []
    assert (report.status, error_of(report).code) == ("failed", "refused")


def test_metadata_address_stays_refused_even_when_allow_listed() -> None:
    engine = make_engine(sources={"website": WebsiteSource()}, allow_hosts=("169.254.169.254",))
    report = engine.enrich(
        EnrichmentInput(sources=("website",), website="http://169.254.169.254/")
    ).sources[0]
    assert error_of(report).code == "refused"


def test_server_errors_are_retried_then_succeed() -> None:
    with fake_website(fail_first=2) as url:
        result = crawl(url)
    assert result.sources[0].status == "success"


def test_server_errors_forever_fail_as_upstream() -> None:
    with fake_website(fail_always=True) as url:
        result = crawl(url)
    report = result.sources[0]
    assert (report.status, error_of(report).code) == ("failed", "upstream")
    assert result.service_failure


def test_url_normalisation() -> None:
    assert normalise_url("HTTPS://Ada.Example.DEV:443") == "https://ada.example.dev/"
    assert (
        normalise_url("http://ada.example.dev:8080/a?b=1#c") == "http://ada.example.dev:8080/a?b=1"
    )


def test_unusable_urls_are_invalid_input() -> None:
    engine = make_engine(sources={"website": WebsiteSource()})
    for bad in ("ftp://example.com/", "javascript:alert(1)", "http://user:pw@example.com/"):
        report = engine.enrich(EnrichmentInput(sources=("website",), website=bad)).sources[0]
        assert (report.status, error_of(report).code) == ("failed", "invalid_input"), bad


@pytest.mark.parametrize("path", ["/robots.txt", "/"])
def test_a_site_limiting_our_requests_is_quota_like_every_source(path: str) -> None:
    """429 is ``quota`` for GitHub and the search provider; the website said ``upstream``, so a
    site rate-limiting us gave the unit back and counted toward the website's breaker."""
    routes = {path: Reply(429, "slow down", {"Content-Type": "text/plain", "Retry-After": "60"})}
    with fake_website(routes=routes) as url:
        report = crawl(url).sources[0]
    assert (report.status, error_of(report).code) == ("failed", "quota")
