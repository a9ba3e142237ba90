"""MkDocs hooks (``hooks:`` in mkdocs.yml): the site's links to files of the repository.

The pages are written to be read in the repository as well, so they link to its files by
relative paths (``../CHANGELOG.md``, ``../streams/policies/default.yaml``), and the pages that
are repository files themselves — ``docs/index.md`` is a symbolic link to ``README.md``,
``docs/changelog.md`` to ``CHANGELOG.md`` — link relative to where they really are
(``docs/quickstart.md``). In the site:

* a link to a file that is also in the site (through a symbolic link or not) goes there;
* a link to any other file of the repository goes to a copy of it under ``repo/``;
* a link to nothing is left as it is, and the strict build fails on it.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: Where copies of the repository files the pages link to are put in the site.
REPO_COPIES = "repo"

# An inline link or image target, `](target)` or `](target "title")`, and a reference
# definition, `[name]: target`.
_INLINE = re.compile(r"(\]\()(<[^>]*>|[^)\s]+)")
_REFERENCE = re.compile(r"^( {0,3}\[[^\]]+\]:[ \t]*)(\S+)", re.MULTILINE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def _outside_code(text: str) -> Iterator[tuple[bool, str]]:
    """``(is_code, chunk)`` pieces of a Markdown text: fenced code blocks apart."""
    chunk: list[str] = []
    fence: str | None = None
    for line in text.splitlines(keepends=True):
        opening = _FENCE.match(line)
        if fence is None and opening:
            if chunk:
                yield False, "".join(chunk)
            chunk, fence = [line], opening.group(1)[0] * len(opening.group(1))
        elif fence is not None and line.lstrip().startswith(fence):
            chunk.append(line)
            yield True, "".join(chunk)
            chunk, fence = [], None
        else:
            chunk.append(line)
    if chunk:
        yield fence is not None, "".join(chunk)


def link_targets(text: str) -> Iterator[str]:
    """Every link target of a Markdown text outside fenced code."""
    for is_code, chunk in _outside_code(text):
        if not is_code:
            for pattern in (_INLINE, _REFERENCE):
                for match in pattern.finditer(chunk):
                    yield match.group(2).strip("<>")


def relative_path(target: str) -> str | None:
    """The file part of a link to a relative path, or None (a URL, an anchor, an absolute
    path)."""
    if not target or target.startswith(("#", "/")) or _SCHEME.match(target):
        return None
    return target.split("#", 1)[0].split("?", 1)[0] or None


def rewrite_links(text: str, new_path: Callable[[str], str | None]) -> str:
    """``text`` with every relative link's path replaced by ``new_path(path)`` where that is
    not None (anchors kept; fenced code untouched)."""

    def replace(match: re.Match[str]) -> str:
        target = match.group(2)
        bare = target.strip("<>")
        path = relative_path(bare)
        if path is None:
            return match.group(0)
        new = new_path(path)
        if new is None or new == path:
            return match.group(0)
        return match.group(1) + new + bare[len(path) :]

    pieces = []
    for is_code, chunk in _outside_code(text):
        if not is_code:
            chunk = _REFERENCE.sub(replace, _INLINE.sub(replace, chunk))
        pieces.append(chunk)
    return "".join(pieces)


class RepositoryLinks:
    """Where a page's relative links point in the site (see the module's docstring)."""

    def __init__(self, repo_root: Path, docs_dir: Path, site_files: dict[Path, str]) -> None:
        self.repo_root = repo_root.resolve()
        self.docs_dir = docs_dir.resolve()
        #: The real path of every file of the site -> its path in the site.
        self.site_files = site_files

    def target(self, page_real_path: Path, path: str) -> Path:
        return (page_real_path.parent / path).resolve()

    def in_site(self, page_real_path: Path, path: str) -> str | None:
        """The site path a link leads to: a file of the site, a copy of a repository file,
        or None (nothing there)."""
        target = self.target(page_real_path, path)
        if target in self.site_files:
            return self.site_files[target]
        if target.is_file() and target.is_relative_to(self.repo_root):
            if target.is_relative_to(self.docs_dir):
                return None  # excluded from the site: a broken link there
            return posixpath.join(REPO_COPIES, target.relative_to(self.repo_root).as_posix())
        return None

    def copies(self, page_real_path: Path, text: str) -> dict[str, Path]:
        """The repository files a page links to that the site must copy: site path -> file."""
        wanted = {}
        for target in link_targets(text):
            path = relative_path(target)
            if path is None:
                continue
            site_path = self.in_site(page_real_path, path)
            if site_path is not None and site_path.startswith(REPO_COPIES + "/"):
                wanted[site_path] = self.target(page_real_path, path)
        return wanted

    def rewrite(self, page_src_uri: str, page_real_path: Path, text: str) -> str:
        """The page's Markdown with its links pointing where they lead in the site."""
        here = posixpath.dirname(page_src_uri)

        def new_path(path: str) -> str | None:
            site_path = self.in_site(page_real_path, path)
            if site_path is None:
                return None
            return posixpath.relpath(site_path, here or ".")

        return rewrite_links(text, new_path)


# ---- the hooks MkDocs calls ---------------------------------------------------------------

_links: RepositoryLinks | None = None


def _real(path: str | None) -> Path | None:
    return Path(os.path.realpath(path)) if path else None


def on_files(files: Any, config: Any) -> Any:
    """Copy into the site the repository files the pages link to."""
    from mkdocs.structure.files import File, InclusionLevel

    global _links
    repo_root = Path(config.config_file_path).parent
    site_files = {}
    for file in files:
        real = _real(file.abs_src_path)
        if real is not None:
            site_files[real] = file.src_uri
    _links = RepositoryLinks(repo_root, Path(config.docs_dir), site_files)
    wanted: dict[str, Path] = {}
    for file in files.documentation_pages():
        real = _real(file.abs_src_path)
        if real is not None:
            wanted.update(_links.copies(real, file.content_string))
    for site_path, source in sorted(wanted.items()):
        files.append(
            File.generated(
                config, site_path, abs_src_path=str(source), inclusion=InclusionLevel.NOT_IN_NAV
            )
        )
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Point the page's relative links where they lead in the site."""
    real = _real(page.file.abs_src_path)
    if _links is None or real is None:
        return markdown
    return _links.rewrite(page.file.src_uri, real, markdown)
