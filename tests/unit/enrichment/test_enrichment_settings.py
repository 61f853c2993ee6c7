"""EXTERNAL_DATA_* settings of the engine: defaults, overrides, clear errors."""

from __future__ import annotations

import pytest

from common.settings import SettingsError, load_settings


def test_defaults() -> None:
    s = load_settings({}).enrichment
    assert s.github_api_url == "https://api.github.com" and s.github_token is None
    assert s.web_search_provider == "brave" and not s.web_search_configured
    assert s.web_search_url == "https://api.search.brave.com"
    assert s.cache_ttl_seconds == 3600 and s.ttl_for("github") == 3600
    assert s.allow_hosts == ()
    assert (s.website_max_pages, s.website_max_page_bytes) == (10, 1_000_000)


def test_overrides() -> None:
    s = load_settings(
        {
            "EXTERNAL_DATA_GITHUB_API_URL": "http://127.0.0.1:9999/",
            "EXTERNAL_DATA_GITHUB_TOKEN": "tok",
            "EXTERNAL_DATA_WEB_SEARCH_API_KEY": "key",
            "EXTERNAL_DATA_WEB_SEARCH_URL": "http://127.0.0.1:9998",
            "EXTERNAL_DATA_CACHE_TTL_SECONDS": "120",
            "EXTERNAL_DATA_CACHE_TTL_GITHUB": "30",
            "EXTERNAL_DATA_ALLOW_HOSTS": "127.0.0.1:9999, Localhost",
        }
    ).enrichment
    assert s.github_api_url == "http://127.0.0.1:9999" and s.github_token == "tok"
    assert s.web_search_configured and s.web_search_url == "http://127.0.0.1:9998"
    assert (s.ttl_for("github"), s.ttl_for("web")) == (30, 120)
    assert s.allow_hosts == ("127.0.0.1:9999", "localhost")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("EXTERNAL_DATA_CACHE_TTL_SECONDS", "soon"),
        ("EXTERNAL_DATA_CACHE_TTL_WEBSITE", "-1"),
        ("EXTERNAL_DATA_GITHUB_API_URL", "ftp://x"),
        ("EXTERNAL_DATA_WEB_SEARCH_PROVIDER", "altavista"),
        ("EXTERNAL_DATA_WEBSITE_MAX_PAGES", "0"),
        ("EXTERNAL_DATA_ALLOW_HOSTS", "10.0.0.0/8"),
    ],
)
def test_invalid_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})
