"""Merge the sources' sections into ``skills`` and ``projects``.

Skills are deduplicated case- and alias-insensitively; each gets the sources that support it
and a confidence in 0..1 that grows with independent evidence (1 - prod(1 - p_i)). Projects are
deduplicated by URL (else name) and ranked by stars, then recency.
"""

from __future__ import annotations

import re
from typing import Any

# canonical name -> aliases (compared after _fold)
_ALIASES: dict[str, tuple[str, ...]] = {
    "JavaScript": ("js", "javascript", "ecmascript", "es6"),
    "TypeScript": ("ts", "typescript"),
    "Go": ("go", "golang"),
    "Kubernetes": ("k8s", "kubernetes", "kube"),
    "PostgreSQL": ("postgres", "postgresql", "psql", "pg"),
    "Python": ("python", "py", "python3"),
    "C++": ("c++", "cpp", "cplusplus"),
    "C#": ("c#", "csharp", "c sharp"),
    "Node.js": ("node", "nodejs", "node.js", "node js"),
    "React": ("react", "reactjs", "react.js", "react js"),
    "Vue.js": ("vue", "vuejs", "vue.js"),
    "Angular": ("angular", "angularjs", "angular.js"),
    "Next.js": ("next", "nextjs", "next.js"),
    "Ruby on Rails": ("rails", "ruby on rails", "ror"),
    "Amazon Web Services": ("aws", "amazon web services"),
    "Google Cloud": ("gcp", "google cloud", "google cloud platform"),
    "Microsoft Azure": ("azure", "microsoft azure"),
    "Machine Learning": ("ml", "machine learning"),
    "Artificial Intelligence": ("ai", "artificial intelligence"),
    "Continuous Integration": ("ci", "continuous integration"),
    "CI/CD": ("ci/cd", "cicd", "ci cd"),
    "MongoDB": ("mongo", "mongodb"),
    "MySQL": ("mysql",),
    "Docker": ("docker",),
    "Terraform": ("terraform", "tf"),
    "HTML": ("html", "html5"),
    "CSS": ("css", "css3"),
    "Shell": ("shell", "bash", "sh", "shell scripting"),
    "Rust": ("rust", "rustlang"),
    "Objective-C": ("objective-c", "objc", "objective c"),
    "Jupyter Notebook": ("jupyter notebook", "jupyter", "ipynb"),
    "GraphQL": ("graphql", "gql"),
    "Elasticsearch": ("elasticsearch", "elastic search", "es"),
}
_FOLD_SPACES = re.compile(r"[\s_]+")


def _fold(name: str) -> str:
    return _FOLD_SPACES.sub(" ", name.strip().lower().replace("-", " ")).strip()


_CANONICAL: dict[str, str] = {}
for _canon, _names in _ALIASES.items():
    for _n in (_canon, *_names):
        _CANONICAL[_fold(_n)] = _canon


def canonical_skill(name: str) -> tuple[str, str]:
    """(dedup key, display name) of a skill; unknown names keep their own spelling."""
    folded = _fold(name)
    canon = _CANONICAL.get(folded)
    if canon is not None:
        return _fold(canon), canon
    return folded, name.strip()


# Prior belief that a skill is real, by the kind of evidence.
_WEIGHT = {"linkedin": 0.6, "website": 0.45, "github_topic": 0.3, "web": 0.2}


def _github_language_weight(lang: dict[str, Any], total_repos: int) -> float:
    share = (lang.get("repos") or 0) / max(1, total_repos)
    bonus = 0.1 if lang.get("bytes") else 0.0
    return min(0.9, 0.35 + 0.5 * share + bonus)


def merge_skills(data: dict[str, Any]) -> list[dict[str, Any]]:
    """``[{name, sources, confidence}]``, most confident first."""
    evidence: dict[str, dict[str, Any]] = {}

    def add(name: Any, source: str, weight: float) -> None:
        if not isinstance(name, str) or not name.strip() or len(name) > 80:
            return
        key, display = canonical_skill(name)
        entry = evidence.setdefault(key, {"name": display, "weights": {}})
        # One source counts once: the strongest evidence it gave.
        entry["weights"][source] = max(entry["weights"].get(source, 0.0), weight)

    github = data.get("github") or {}
    own_repos = max(1, (github.get("totals") or {}).get("ownRepos") or 0)
    for lang in github.get("languages") or []:
        add(lang.get("name"), "github", _github_language_weight(lang, own_repos))
    for repo in github.get("repos") or []:
        if not repo.get("fork"):
            for topic in repo.get("topics") or []:
                add(topic, "github", _WEIGHT["github_topic"])
    for skill in (data.get("linkedin") or {}).get("skills") or []:
        add(
            skill.get("name") if isinstance(skill, dict) else skill, "linkedin", _WEIGHT["linkedin"]
        )
    for skill in (data.get("website") or {}).get("skills") or []:
        add(skill, "website", _WEIGHT["website"])

    out = []
    for entry in evidence.values():
        miss = 1.0
        for w in entry["weights"].values():
            miss *= 1.0 - w
        out.append(
            {
                "name": entry["name"],
                "sources": sorted(entry["weights"]),
                "confidence": round(1.0 - miss, 2),
            }
        )
    out.sort(key=lambda s: (-s["confidence"], -len(s["sources"]), s["name"].lower()))
    return out


def _norm_url(url: Any) -> str | None:
    if not isinstance(url, str) or not url.strip():
        return None
    u = url.strip().lower().rstrip("/")
    return re.sub(r"^https?://(www\.)?", "", u)


def merge_projects(data: dict[str, Any], limit: int | None = None) -> list[dict[str, Any]]:
    """``[{name, url, description, stars, updatedAt, source}]`` ranked by stars then recency;
    all of them unless ``limit``: the answer's bounds cut the list at its cap (100, contract 2.1)
    and say so (``truncated``)."""
    found: list[dict[str, Any]] = []
    for repo in (data.get("github") or {}).get("repos") or []:
        if repo.get("fork"):
            continue
        found.append(
            {
                "name": repo.get("name"),
                "url": repo.get("url"),
                "description": repo.get("description"),
                "stars": repo.get("stars") or 0,
                "updatedAt": repo.get("pushedAt") or repo.get("updatedAt"),
                "source": "github",
            }
        )
    for proj in (data.get("linkedin") or {}).get("projects") or []:
        found.append(
            {
                "name": proj.get("title"),
                "url": proj.get("url"),
                "description": proj.get("description"),
                "stars": None,
                "updatedAt": proj.get("end") or proj.get("start"),
                "source": "linkedin",
            }
        )
    for proj in (data.get("website") or {}).get("projects") or []:
        found.append(
            {
                "name": proj.get("name"),
                "url": proj.get("url"),
                "description": proj.get("description"),
                "stars": None,
                "updatedAt": proj.get("updatedAt"),
                "source": "website",
            }
        )
    seen: dict[str, dict[str, Any]] = {}
    for proj in found:
        if not proj["name"] and not proj["url"]:
            continue
        key = _norm_url(proj["url"]) or "name:" + _fold(str(proj["name"]))
        if key in seen:
            kept = seen[key]
            for field in ("description", "updatedAt", "url", "name"):
                kept[field] = kept[field] or proj[field]
            continue
        seen[key] = dict(proj)
    ranked = sorted(
        seen.values(),
        key=lambda p: (p["stars"] or 0, str(p["updatedAt"] or "")),
        reverse=True,
    )
    return ranked if limit is None else ranked[:limit]


def merge(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` plus ``skills`` and ``projects``."""
    return {**data, "skills": merge_skills(data), "projects": merge_projects(data)}
