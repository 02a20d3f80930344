"""What a report looks like once rendered: its Markdown through GitHub's renderer (cmark-gfm,
autolinks on, raw HTML let through so that any would show) and through markdown-it with
linkify (which links bare domains), and the tags of an HTML page."""

from html.parser import HTMLParser

import cmarkgfm
from cmarkgfm.cmark import Options
from markdown_it import MarkdownIt

_LINKIFY = MarkdownIt("gfm-like", {"linkify": True})


def github(markdown: str) -> str:
    return str(cmarkgfm.github_flavored_markdown_to_html(
        markdown, options=Options.CMARK_OPT_UNSAFE))


def linkified(markdown: str) -> str:
    return _LINKIFY.render(markdown)


class Page(HTMLParser):
    """An HTML document's start tags, their attributes, and its text."""

    def __init__(self, document: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.feed(document)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @property
    def plain(self) -> str:
        return "".join(self.text)


def li_texts(html: str) -> list[str]:
    """The text of each list item of rendered Markdown, tags taken out."""
    items = html.split("<li>")[1:]
    return [Page(item.split("</li>")[0]).plain for item in items]
