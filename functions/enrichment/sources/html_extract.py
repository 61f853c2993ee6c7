"""One HTML page → title, meta, links, JSON-LD blocks and microformats2 items (stdlib parser).

The microformats support is the useful core of mf2: root classes ``h-*``, properties ``p-*``
(text), ``u-*`` (href/src), ``dt-*`` (datetime), ``e-*`` (text), nested items, and implied
``name``/``url`` on the root element. Enough for ``h-card`` and ``h-entry`` on personal sites.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

VOID = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    }
)
_SPACE = re.compile(r"\s+")


def _clean(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


@dataclass
class Link:
    """An ``<a href>`` of the page."""

    href: str
    rel: tuple[str, ...]
    text: str


@dataclass
class Mf2Item:
    """A microformats2 item (``h-card``, ``h-entry``, ...)."""

    types: list[str]
    properties: dict[str, list[Any]] = field(default_factory=dict)

    def first(self, name: str) -> Any:
        """The first value of a property, or None."""
        values = self.properties.get(name)
        return values[0] if values else None


@dataclass
class _Frame:
    tag: str
    attrs: dict[str, str]
    item: Mf2Item | None = None
    text_props: list[tuple[Mf2Item, str]] = field(default_factory=list)
    as_property: list[str] = field(default_factory=list)  # nested item: its property names
    collects: bool = False
    text: list[str] = field(default_factory=list)


@dataclass
class Page:
    """What one page says about itself."""

    title: str | None = None
    meta: dict[str, str] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    jsonld: list[Any] = field(default_factory=list)
    jsonld_errors: int = 0
    items: list[Mf2Item] = field(default_factory=list)
    canonical: str | None = None
    has_article: bool = False


class PageParser(HTMLParser):
    """Feed it the page text, then read ``page``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._stack: list[_Frame] = []
        self._title: list[str] | None = None
        self._script: list[str] | None = None

    # -- helpers -------------------------------------------------------------------------
    def _current_item(self) -> Mf2Item | None:
        for frame in reversed(self._stack):
            if frame.item is not None:
                return frame.item
        return None

    @staticmethod
    def _url_value(tag: str, attrs: dict[str, str]) -> str | None:
        if tag in ("a", "area", "link") and "href" in attrs:
            return attrs["href"]
        if tag in ("img", "audio", "video", "source", "iframe") and "src" in attrs:
            return attrs["src"]
        if tag == "object" and "data" in attrs:
            return attrs["data"]
        return None

    # -- HTMLParser hooks ----------------------------------------------------------------
    def handle_starttag(self, tag: str, attr_list: list[tuple[str, str | None]]) -> None:
        attrs = {k.lower(): (v or "") for k, v in attr_list}
        classes = attrs.get("class", "").split()
        if tag == "title" and self.page.title is None:
            self._title = []
        elif tag == "meta":
            key = (attrs.get("property") or attrs.get("name") or "").strip().lower()
            if key and "content" in attrs and key not in self.page.meta:
                self.page.meta[key] = attrs["content"].strip()
        elif tag == "link":
            rels = attrs.get("rel", "").lower().split()
            if "canonical" in rels and attrs.get("href"):
                self.page.canonical = attrs["href"]
            if "me" in rels and attrs.get("href"):
                self.page.links.append(Link(attrs["href"], tuple(rels), ""))
        elif tag == "script" and attrs.get("type", "").strip().lower() == "application/ld+json":
            self._script = []
        elif tag == "article":
            self.page.has_article = True

        parent_item = self._current_item()
        roots = [c for c in classes if c.startswith("h-") and len(c) > 2]
        props = [c for c in classes if re.match(r"^(p|u|dt|e)-.+", c)]
        frame = _Frame(tag, attrs)
        if roots:
            frame.item = Mf2Item(types=roots)
            if parent_item is not None and props:
                frame.as_property = [p.split("-", 1)[1] for p in props]
            elif parent_item is None:
                pass  # a top-level item, attached at close
        elif parent_item is not None:
            for prop in props:
                prefix, name = prop.split("-", 1)
                value: str | None = None
                if prefix == "u":
                    value = self._url_value(tag, attrs)
                elif prefix == "dt":
                    value = attrs.get("datetime") or (attrs.get("value") if tag == "data" else None)
                if prefix == "p" and tag == "img" and "alt" in attrs:
                    value = attrs["alt"]
                if value is not None:
                    parent_item.properties.setdefault(name, []).append(value.strip())
                else:
                    frame.text_props.append((parent_item, name))
        if tag == "a" and attrs.get("href"):
            frame.collects = True
        if frame.item is not None or frame.text_props:
            frame.collects = True
        if tag in VOID:
            self._close(frame)
        else:
            self._stack.append(frame)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._title is not None:
            self.page.title = _clean("".join(self._title)) or None
            self._title = None
        if tag == "script" and self._script is not None:
            raw = "".join(self._script).strip()
            self._script = None
            if raw:
                try:
                    self.page.jsonld.append(json.loads(raw))
                except ValueError:
                    self.page.jsonld_errors += 1
        # Close up to the matching open tag (HTML lets authors omit end tags).
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i].tag == tag:
                while len(self._stack) > i:
                    self._close(self._stack.pop())
                return

    def handle_data(self, data: str) -> None:
        if self._title is not None:
            self._title.append(data)
        if self._script is not None:
            self._script.append(data)
            return
        for frame in self._stack:
            if frame.collects:
                frame.text.append(data)

    def close(self) -> None:
        super().close()
        while self._stack:
            self._close(self._stack.pop())

    # -- closing an element finalises what it carried --------------------------------------
    def _close(self, frame: _Frame) -> None:
        text = _clean("".join(frame.text))
        if frame.tag == "a" and frame.attrs.get("href"):
            rels = tuple(frame.attrs.get("rel", "").lower().split())
            self.page.links.append(Link(frame.attrs["href"], rels, text))
        for item, name in frame.text_props:
            if text:
                item.properties.setdefault(name, []).append(text)
        if frame.item is not None:
            item = frame.item
            if "name" not in item.properties and text and len(text) <= 200:
                item.properties["name"] = [text]  # implied name
            if "url" not in item.properties:
                implied = self._url_value(frame.tag, frame.attrs)
                if implied:
                    item.properties["url"] = [implied]
            parent = self._current_item()
            if frame.as_property and parent is not None:
                for name in frame.as_property:
                    parent.properties.setdefault(name, []).append(item)
            elif parent is not None:
                parent.properties.setdefault("children", []).append(item)
            else:
                self.page.items.append(item)
        # Text also belongs to the enclosing collectors (already appended in handle_data).


def parse_page(html: str) -> Page:
    """Parse one page; never raises on bad markup (the parser is forgiving by design)."""
    parser = PageParser()
    parser.feed(html)
    parser.close()
    return parser.page


def jsonld_nodes(blocks: list[Any]) -> list[dict[str, Any]]:
    """Every JSON-LD node of the page: top-level objects, arrays and ``@graph`` members."""
    out: list[dict[str, Any]] = []
    stack = list(blocks)
    while stack and len(out) < 500:
        node = stack.pop(0)
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if "@graph" in node and isinstance(node["@graph"], list):
                stack.extend(node["@graph"])
            if "@type" in node:
                out.append(node)
            for key in ("mainEntity", "author", "hasPart", "workExample", "subjectOf"):
                if isinstance(node.get(key), dict | list):
                    stack.append(node[key])
    return out


def node_types(node: dict[str, Any]) -> set[str]:
    """A JSON-LD node's ``@type`` values, without schema.org prefixes."""
    raw = node.get("@type")
    values = raw if isinstance(raw, list) else [raw]
    return {str(v).rsplit("/", 1)[-1] for v in values if v}
