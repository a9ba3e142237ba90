"""The site's links to repository files (streams/devtools/mkdocs_hooks.py): pages that are
symbolic links resolve their links where they really are, repository files are copied under
repo/, and a link to nothing is left for the strict build to refuse."""

from __future__ import annotations

from pathlib import Path

from streams.devtools.mkdocs_hooks import RepositoryLinks, link_targets, rewrite_links

PAGE = """# Title

See [the changelog](../CHANGELOG.md#unreleased), [policy](policy.md), ![plot](img/a.png),
[a site](https://example.org/x.md) and [here](#title).

[ref]: ../LICENSE

```sh
echo "[not a link](../nowhere.md)"
```
"""


def test_links_are_found_outside_fenced_code_only() -> None:
    assert list(link_targets(PAGE)) == [
        "../CHANGELOG.md#unreleased",
        "policy.md",
        "img/a.png",
        "https://example.org/x.md",
        "#title",
        "../LICENSE",
    ]


def test_only_relative_paths_are_rewritten_and_anchors_kept() -> None:
    seen: list[str] = []

    def new_path(path: str) -> str | None:
        seen.append(path)
        return {"../CHANGELOG.md": "changelog.md", "../LICENSE": "repo/LICENSE"}.get(path)

    text = rewrite_links(PAGE, new_path)
    assert seen == ["../CHANGELOG.md", "policy.md", "img/a.png", "../LICENSE"]
    assert "[the changelog](changelog.md#unreleased)" in text
    assert "[ref]: repo/LICENSE" in text
    assert "[policy](policy.md)" in text and "(https://example.org/x.md)" in text
    assert '"[not a link](../nowhere.md)"' in text


def _repository(tmp_path: Path) -> tuple[RepositoryLinks, Path]:
    docs = tmp_path / "docs"
    docs.mkdir()
    (tmp_path / "README.md").write_text("[start](docs/guide.md#setup) [license](LICENSE)\n")
    (tmp_path / "LICENSE").write_text("license\n")
    (docs / "guide.md").write_text("# Setup\n[home](index.md) [gone](../missing.py)\n")
    (docs / "index.md").symlink_to("../README.md")
    site_files = {
        (tmp_path / "README.md").resolve(): "index.md",
        (docs / "guide.md").resolve(): "guide.md",
    }
    return RepositoryLinks(tmp_path, docs, site_files), docs


def test_a_page_that_is_a_symbolic_link_links_from_where_it_really_is(tmp_path: Path) -> None:
    links, docs = _repository(tmp_path)
    readme = (docs / "index.md").resolve()
    text = links.rewrite("index.md", readme, readme.read_text())
    assert text == "[start](guide.md#setup) [license](repo/LICENSE)\n"
    assert links.copies(readme, readme.read_text()) == {
        "repo/LICENSE": (tmp_path / "LICENSE").resolve()
    }


def test_a_link_to_nothing_is_left_for_the_strict_build(tmp_path: Path) -> None:
    links, docs = _repository(tmp_path)
    guide = docs / "guide.md"
    text = links.rewrite("guide.md", guide.resolve(), guide.read_text())
    # index.md is the README through its link: still index.md; the missing file untouched.
    assert text == guide.read_text()
    assert links.copies(guide.resolve(), guide.read_text()) == {}


def test_a_page_in_a_subfolder_gets_paths_relative_to_it(tmp_path: Path) -> None:
    links, docs = _repository(tmp_path)
    (docs / "deep").mkdir()
    page = docs / "deep" / "page.md"
    page.write_text("[license](../../LICENSE) [guide](../guide.md)\n")
    text = links.rewrite("deep/page.md", page.resolve(), page.read_text())
    assert text == "[license](../repo/LICENSE) [guide](../guide.md)\n"
