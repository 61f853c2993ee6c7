"""One HTML page → title, meta, links, JSON-LD blocks and microformats2 items (stdlib parser).

The microformats support is the useful core of mf2: root classes ``h-*``, properties ``p-*``
(text), ``u-*`` (href/src), ``dt-*`` (datetime), ``e-*`` (text), nested items, and implied
``name``/``url`` on the root element. Enough for ``h-card`` and ``h-entry`` on personal sites.

Hostile pages cost linear time and bounded memory: nesting is tracked to ``MAX_DEPTH`` open
elements, text goes to one page-wide buffer that an element reads back (at most ``MAX_TEXT``
characters) when it closes, an ``<a>`` closes an open ``<a>`` (as browsers do), and links, items,
property values, meta entries and JSON-LD blocks, depth and nodes are all counted against limits.
"""

from __future__ import annotations

import asyncio
import json
import re
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Protocol

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
_PROPERTY_CLASS = re.compile(r"^(p|u|dt|e)-.+")

MAX_DEPTH = 256
"""Open elements tracked; deeper ones are treated as if closed at once (their text is lost)."""
MAX_TEXT = 4000
"""Characters of text an element keeps (the contract's string cap)."""
MAX_LINKS = 1000
"""Links kept per page."""
MAX_ITEMS = 200
"""Top-level microformats items kept per page."""
MAX_ALL_ITEMS = 1000
"""Microformats items created per page, nested ones included."""
MAX_PROPERTY_VALUES = 50
"""Values kept per microformats property."""
MAX_PROPERTIES = 100
"""Property names kept per microformats item."""
MAX_META = 200
"""``<meta>`` entries kept per page."""
MAX_JSONLD_BLOCKS = 20
"""JSON-LD ``<script>`` blocks read per page."""
MAX_JSONLD_CHARS = 200_000
"""Characters of one JSON-LD block (real ones are a few KB); a longer block is an error."""
MAX_JSONLD_TOTAL = 500_000
"""Characters of JSON-LD read per page: ten pages' parsed blocks stay well under 100 MB."""
MAX_JSON_DEPTH = 64
"""Nesting of a JSON-LD block beyond which it is counted as an error (real ones are ~10 deep)."""
MAX_JSONLD_NODES = 500
"""JSON-LD nodes returned per page."""
MAX_JSONLD_VISITS = 20_000
"""JSON values looked at while collecting nodes (a flat array of 300,000 numbers stops here)."""


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

    def add(self, name: str, value: Any) -> None:
        """Append a property value, within ``MAX_PROPERTIES`` and ``MAX_PROPERTY_VALUES``."""
        values = self.properties.get(name)
        if values is None:
            if len(self.properties) >= MAX_PROPERTIES:
                return
            values = self.properties[name] = []
        if len(values) < MAX_PROPERTY_VALUES:
            values.append(value)

    def first(self, name: str) -> Any:
        """The first value of a property, or None."""
        values = self.properties.get(name)
        return values[0] if values else None


@dataclass
class _Frame:
    tag: str
    attrs: dict[str, str]
    item: Mf2Item | None = None
    owner: Mf2Item | None = None
    """The nearest item: this element's own, else its parent's ``owner``."""
    text_props: list[tuple[Mf2Item, str]] = field(default_factory=list)
    as_property: list[str] = field(default_factory=list)  # nested item: its property names
    collects: bool = False
    text_from: int = 0
    """Index in the page's text buffer where this element's text starts."""


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


def _too_deep(value: Any, limit: int) -> bool:
    """True when ``value`` nests deeper than ``limit`` (iterative: no recursion to blow)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def load_jsonld(raw: str) -> tuple[bool, Any]:
    """``(True, value)`` for a usable JSON-LD block; ``(False, None)`` when it is not JSON or
    nests deeper than ``MAX_JSON_DEPTH``."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return False, None
    if _too_deep(value, MAX_JSON_DEPTH):
        return False, None
    return True, value


class PageParser(HTMLParser):
    """Feed it the page text, then read ``page``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._stack: list[_Frame] = []
        self._open: dict[str, int] = {}  # tag -> open frames with that tag
        self._title: list[str] | None = None
        self._script: list[str] | None = None
        self.broken = False
        """True when the stdlib parser gave up on the page (what it read before is kept)."""
        self._scripts_seen = 0
        self._jsonld_chars = 0
        self._items_made = 0
        # Text of the open collecting elements: one buffer for the page, not one per element
        # (copying every piece into every open element was quadratic on unclosed tags).
        self._collecting = 0
        self._pieces: list[str] = []
        self._ends: list[int] = []  # _ends[i]: characters in _pieces[: i + 1]

    # -- helpers -------------------------------------------------------------------------
    def _current_item(self) -> Mf2Item | None:
        return self._stack[-1].owner if self._stack else None

    @staticmethod
    def _url_value(tag: str, attrs: dict[str, str]) -> str | None:
        if tag in ("a", "area", "link") and "href" in attrs:
            return attrs["href"]
        if tag in ("img", "audio", "video", "source", "iframe") and "src" in attrs:
            return attrs["src"]
        if tag == "object" and "data" in attrs:
            return attrs["data"]
        return None

    def _add_link(self, link: Link) -> None:
        if len(self.page.links) < MAX_LINKS:
            self.page.links.append(link)

    def _text_since(self, start: int) -> tuple[str, bool]:
        """(text from piece ``start`` on, at most ``MAX_TEXT`` characters; True if cut)."""
        if start >= len(self._pieces):
            return "", False
        before = self._ends[start - 1] if start else 0
        total = self._ends[-1] - before
        stop = bisect_left(self._ends, before + MAX_TEXT, lo=start)
        text = "".join(self._pieces[start : stop + 1])
        return text[:MAX_TEXT], total > MAX_TEXT

    # -- HTMLParser hooks ----------------------------------------------------------------
    def parse_marked_section(self, i: int, report: bool = True) -> int:
        """A malformed ``<![`` (``<![0``) makes the stdlib parser raise ``AssertionError``
        (found by fuzzing); read it up to the next ``>`` as a comment, as browsers do."""
        try:
            return int(super().parse_marked_section(i, report))
        except AssertionError:
            return int(self.parse_bogus_comment(i, report))

    def handle_starttag(self, tag: str, attr_list: list[tuple[str, str | None]]) -> None:
        attrs = {k.lower(): (v or "") for k, v in attr_list}
        classes = attrs.get("class", "").split()
        if tag == "title" and self.page.title is None:
            self._title = []
        elif tag == "meta":
            key = (attrs.get("property") or attrs.get("name") or "").strip().lower()
            if (
                key
                and "content" in attrs
                and key not in self.page.meta
                and len(self.page.meta) < MAX_META
            ):
                self.page.meta[key] = attrs["content"].strip()
        elif tag == "link":
            rels = attrs.get("rel", "").lower().split()
            if "canonical" in rels and attrs.get("href"):
                self.page.canonical = attrs["href"]
            if "me" in rels and attrs.get("href"):
                self._add_link(Link(attrs["href"], tuple(rels), ""))
        elif tag == "script" and attrs.get("type", "").strip().lower() == "application/ld+json":
            self._scripts_seen += 1
            self._script = [] if self._scripts_seen <= MAX_JSONLD_BLOCKS else None
        elif tag == "article":
            self.page.has_article = True
        elif tag == "a" and self._open.get("a"):
            self._close_to("a")  # an <a> inside an open <a> ends it, as in browsers

        parent_item = self._current_item()
        roots = [c for c in classes if c.startswith("h-") and len(c) > 2]
        props = [c for c in classes if _PROPERTY_CLASS.match(c)]
        frame = _Frame(tag, attrs, owner=parent_item)
        if roots and self._items_made < MAX_ALL_ITEMS:
            self._items_made += 1
            frame.item = frame.owner = Mf2Item(types=roots)
            if parent_item is not None and props:
                frame.as_property = [p.split("-", 1)[1] for p in props]
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
                    parent_item.add(name, value.strip())
                else:
                    frame.text_props.append((parent_item, name))
        if tag == "a" and attrs.get("href"):
            frame.collects = True
        if frame.item is not None or frame.text_props:
            frame.collects = True
        if tag in VOID or len(self._stack) >= MAX_DEPTH:
            self._finish(frame, "", cut=False)
        else:
            self._push(frame)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._title is not None:
            self.page.title = _clean("".join(self._title))[:MAX_TEXT] or None
            self._title = None
        if tag == "script" and self._script is not None:
            raw = "".join(self._script).strip()
            self._script = None
            self._jsonld_chars += len(raw)
            if len(raw) > MAX_JSONLD_CHARS or self._jsonld_chars > MAX_JSONLD_TOTAL:
                self.page.jsonld_errors += 1
            elif raw:
                ok, value = load_jsonld(raw)
                if ok:
                    self.page.jsonld.append(value)
                else:
                    self.page.jsonld_errors += 1
        # Close up to the matching open tag (HTML lets authors omit end tags).
        self._close_to(tag)

    def handle_data(self, data: str) -> None:
        if self._title is not None:
            self._title.append(data)
        if self._script is not None:
            self._script.append(data)
            return
        if self._collecting:
            self._pieces.append(data)
            self._ends.append((self._ends[-1] if self._ends else 0) + len(data))

    def close(self) -> None:
        super().close()
        while self._stack:
            self._pop()

    # -- the stack of open elements --------------------------------------------------------
    def _push(self, frame: _Frame) -> None:
        self._stack.append(frame)
        self._open[frame.tag] = self._open.get(frame.tag, 0) + 1
        if frame.collects:
            self._collecting += 1
            frame.text_from = len(self._pieces)

    def _pop(self) -> None:
        frame = self._stack.pop()
        self._open[frame.tag] -= 1
        text, cut = "", False
        if frame.collects:
            text, cut = self._text_since(frame.text_from)
            self._collecting -= 1
            if not self._collecting:
                self._pieces.clear()
                self._ends.clear()
        self._finish(frame, _clean(text), cut=cut)

    def _close_to(self, tag: str) -> None:
        """Close the innermost open ``tag`` and everything opened inside it (amortised O(1):
        a tag that is not open costs one look-up)."""
        if not self._open.get(tag):
            return
        while self._stack:
            last = self._stack[-1].tag
            self._pop()
            if last == tag:
                return

    # -- closing an element finalises what it carried --------------------------------------
    def _finish(self, frame: _Frame, text: str, *, cut: bool) -> None:
        if frame.tag == "a" and frame.attrs.get("href"):
            rels = tuple(frame.attrs.get("rel", "").lower().split())
            self._add_link(Link(frame.attrs["href"], rels, text))
        for item, name in frame.text_props:
            if text:
                item.add(name, text)
        if frame.item is not None:
            item = frame.item
            if "name" not in item.properties and text and not cut and len(text) <= 200:
                item.properties["name"] = [text]  # implied name
            if "url" not in item.properties:
                implied = self._url_value(frame.tag, frame.attrs)
                if implied:
                    item.properties["url"] = [implied]
            parent = self._current_item()
            if frame.as_property and parent is not None:
                for name in frame.as_property:
                    parent.add(name, item)
            elif parent is not None:
                parent.add("children", item)
            elif len(self.page.items) < MAX_ITEMS:
                self.page.items.append(item)


FEED_CHUNK = 16 * 1024
"""Characters handed to the stdlib parser at a time."""
MAX_PENDING = 64 * 1024
"""Unparsed text the stdlib parser may hold while it waits for a construct to end.

The stdlib parser (CPython 3.11) is quadratic on constructs that never end (``<a<a<a...``,
``<!--<!--...``, ``</</...``): each ``<`` rescans to the end of its buffer. Fed in chunks, it
stops at the first unfinished construct and keeps the rest pending; when the pending text
passes this limit, its first half is taken as plain text. Every character is then scanned a
bounded number of times, and no real tag, comment or attribute is that long (a longer one is
read as text)."""


def _feed(parser: PageParser, chunk: str) -> None:
    if parser.broken:
        return
    try:
        parser.feed(chunk)
    except AssertionError:
        _give_up(parser)
        return
    pending = parser.rawdata
    if len(pending) > MAX_PENDING and parser.cdata_elem is None:
        cut = pending.rfind("<", 1, MAX_PENDING // 2)
        cut = cut if cut > 0 else MAX_PENDING // 2
        parser.rawdata = ""
        parser.handle_data(pending[:cut])
        try:
            parser.feed(pending[cut:])
        except AssertionError:
            _give_up(parser)


def _give_up(parser: PageParser) -> None:
    """The stdlib parser asserted on input it does not expect: keep what was read so far."""
    parser.broken = True
    parser.rawdata = ""


def _close(parser: PageParser) -> None:
    # What is still pending at the end is an unfinished construct (and what follows it): read
    # as text, as the stdlib parser would, but without its rescans.
    pending = parser.rawdata
    if len(pending) > 1024 or parser.broken:
        parser.rawdata = ""
        if not parser.broken:
            parser.handle_data(pending)
    try:
        parser.close()
    except AssertionError:
        _give_up(parser)
        parser.close()


def parse_page(html: str) -> Page:
    """Parse one page; never raises on bad markup (the parser is forgiving by design). Linear
    in time, memory bounded by the page's size."""
    parser = PageParser()
    for at in range(0, len(html), FEED_CHUNK):
        _feed(parser, html[at : at + FEED_CHUNK])
    _close(parser)
    return parser.page


class _Deadline(Protocol):
    def check(self) -> None: ...


async def parse_page_async(
    html: str, *, deadline: _Deadline | None = None, pause_every: int = FEED_CHUNK
) -> Page:
    """``parse_page`` that lets the event loop run every ``pause_every`` characters (so a
    cancellation stops a long parse) and checks ``deadline`` there (``fetch.Deadline.check``
    raises the source's ``timeout``)."""
    parser = PageParser()
    for at in range(0, len(html), FEED_CHUNK):
        _feed(parser, html[at : at + FEED_CHUNK])
        if at and at % pause_every == 0:
            if deadline is not None:
                deadline.check()
            await asyncio.sleep(0)
    _close(parser)
    return parser.page


def jsonld_nodes(blocks: list[Any]) -> list[dict[str, Any]]:
    """Every JSON-LD node of the page: top-level objects, arrays and ``@graph`` members
    (breadth first, at most ``MAX_JSONLD_NODES``, looking at most at ``MAX_JSONLD_VISITS``
    values)."""
    out: list[dict[str, Any]] = []
    queue: deque[Any] = deque(blocks[:MAX_JSONLD_BLOCKS])
    visits = 0
    while queue and len(out) < MAX_JSONLD_NODES and visits < MAX_JSONLD_VISITS:
        node = queue.popleft()
        visits += 1
        if isinstance(node, list):
            queue.extend(node[:MAX_JSONLD_VISITS])
        elif isinstance(node, dict):
            graph = node.get("@graph")
            if isinstance(graph, list):
                queue.extend(graph[:MAX_JSONLD_VISITS])
            if "@type" in node:
                out.append(node)
            for key in ("mainEntity", "author", "hasPart", "workExample", "subjectOf"):
                if isinstance(node.get(key), dict | list):
                    queue.append(node[key])
    return out


def node_types(node: dict[str, Any]) -> set[str]:
    """A JSON-LD node's ``@type`` values (strings only), without schema.org prefixes."""
    raw = node.get("@type")
    values = raw if isinstance(raw, list) else [raw]
    return {v.rsplit("/", 1)[-1] for v in values[:20] if isinstance(v, str) and v}
