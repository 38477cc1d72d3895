"""ARCHITECTURE.md names the code as it is.

Every path and every dotted name it writes in backticks must exist: a path as a file or folder (of
the repository, or under ``src/iflow2api/``, where the document says its paths are), a dotted name
as a module of ``iflow2api`` and the attribute named after it. Renaming or moving a module, class or
function the document names fails here, so the document moves with the code. Its ``§N`` citations
must be sections of ``docs/protocol/iflow.md``, its links must lead somewhere, and every package of
``src/iflow2api/`` must be named in it and in both READMEs' layout.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "iflow2api"
DOC = ROOT / "ARCHITECTURE.md"
PROTOCOL = ROOT / "docs" / "protocol" / "iflow.md"
READMES = (ROOT / "README.md", ROOT / "README.zh-CN.md")

_CODE = re.compile(r"`([^`\n]+)`")
_CALL = re.compile(r"\(.*\)$")  # ``create_app(settings)`` names ``create_app``
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_CLASS_NAME = re.compile(r"[A-Z][a-z]\w*")
_FILE_TYPES = (".py", ".md", ".toml", ".js", ".css", ".html", ".json")
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
_CITATION = re.compile(r"§\s*(\d+(?:\.\d+)?)")
_SECTION = re.compile(r"^#{2,4} (\d+(?:\.\d+)?)[ .]", re.MULTILINE)


def _tokens() -> list[str]:
    found = []
    for raw in _CODE.findall(DOC.read_text(encoding="utf-8")):
        token = _CALL.sub("", raw.strip())
        if token and not any(c.isspace() for c in token):
            found.append(token)
    return sorted(set(found))


def _is_path(token: str) -> bool:
    return "/" in token or token.endswith(_FILE_TYPES)


URLS = [token for token in _tokens() if token.startswith("/")]
PATHS = [token for token in _tokens() if _is_path(token) and token not in URLS]
NAMES = [token for token in _tokens() if not _is_path(token) and _DOTTED.fullmatch(token)]
CLASSES = [token for token in _tokens() if _CLASS_NAME.fullmatch(token)]


def _module_file(parts: list[str]) -> Path | None:
    base = PACKAGE.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if parts and candidate.is_file():
            return candidate
    return None


def _has_attribute(owner: object, name: str) -> bool:
    """``owner.name`` exists: on the object itself, or as an instance attribute of a class
    (declared in its annotations, or set as ``self.name`` in its source)."""
    if hasattr(owner, name):
        return True
    if not inspect.isclass(owner):
        return False
    for cls in owner.__mro__:
        if name in getattr(cls, "__annotations__", {}):
            return True
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        if re.search(rf"\bself\.{re.escape(name)}\b\s*(?::[^=\n]+)?=", source):
            return True
    return False


@cache
def _defined_classes() -> frozenset[str]:
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return frozenset(names)


def test_the_document_names_code() -> None:
    # Guards the guard: a change to the document's notation must not leave nothing checked.
    assert len(PATHS) > 20 and len(NAMES) > 40, (len(PATHS), len(NAMES))


@pytest.mark.parametrize("token", PATHS)
def test_each_path_exists(token: str) -> None:
    assert (ROOT / token).exists() or (PACKAGE / token).exists(), (
        f"ARCHITECTURE.md names `{token}`, which is neither in the repository nor under src/iflow2api/"
    )


@pytest.mark.parametrize("token", URLS)
def test_each_url_path_is_served(token: str) -> None:
    from iflow2api import routing  # here, so a broken import fails this test, not the collection

    served = [*routing.ROUTES, *routing.MODEL_PREFIXES]
    assert any(path.startswith(token) for path in served), (
        f"ARCHITECTURE.md names `{token}`, which no route serves"
    )


@pytest.mark.parametrize("token", NAMES)
def test_each_dotted_name_exists(token: str) -> None:
    parts = token.split(".")
    if parts[0] == "iflow2api":
        parts = parts[1:]
    # The longest leading part that is a module file of iflow2api; the rest are attributes.
    split = next((i for i in range(len(parts), 0, -1) if _module_file(parts[:i]) is not None), 0)
    assert split, f"ARCHITECTURE.md names `{token}`, but no module of iflow2api starts it"
    owner: object = importlib.import_module(".".join(["iflow2api", *parts[:split]]))
    for index, name in enumerate(parts[split:], start=split):
        assert _has_attribute(owner, name), (
            f"ARCHITECTURE.md names `{token}`, but {'.'.join(parts[:index])} has no {name!r}"
        )
        value = getattr(owner, name, None)
        if inspect.ismodule(owner) and (inspect.isclass(value) or inspect.isfunction(value)):
            # Where it is defined, not a module that merely imports it: the document says where.
            assert value.__module__ == owner.__name__, (
                f"ARCHITECTURE.md names `{token}`, but {name} lives in {value.__module__}"
            )
        owner = value


def test_each_bare_class_name_is_defined() -> None:
    unknown = [token for token in CLASSES if token not in _defined_classes()]
    assert not unknown, f"ARCHITECTURE.md names {unknown}, which iflow2api does not define"


def test_links_lead_somewhere() -> None:
    for target in _LINK.findall(DOC.read_text(encoding="utf-8")):
        if "://" not in target:
            assert (ROOT / target).exists(), f"ARCHITECTURE.md links to {target}, which is missing"


def test_protocol_citations_are_sections() -> None:
    sections = set(_SECTION.findall(PROTOCOL.read_text(encoding="utf-8")))
    cited = set(_CITATION.findall(DOC.read_text(encoding="utf-8")))
    assert cited, "ARCHITECTURE.md cites no section of docs/protocol/iflow.md"
    assert cited <= sections, f"not sections of docs/protocol/iflow.md: {sorted(cited - sections)}"


def _packages() -> list[str]:
    return sorted(path.parent.relative_to(PACKAGE).as_posix() + "/" for path in PACKAGE.glob("*/__init__.py"))


def test_every_package_is_in_the_document() -> None:
    tokens = set(_tokens())
    missing = [name for name in _packages() if name not in tokens]
    assert not missing, f"ARCHITECTURE.md does not say what these hold: {missing}"


@pytest.mark.parametrize("readme", READMES, ids=lambda path: path.name)
def test_every_package_is_in_the_readme_layout(readme: Path) -> None:
    text = readme.read_text(encoding="utf-8")
    layout = text[text.index("src/iflow2api/\n") :]
    layout = layout[: layout.index("```")]
    missing = [name for name in _packages() if not re.search(rf"^ +{re.escape(name)} ", layout, re.MULTILINE)]
    assert not missing, f"{readme.name}'s layout block leaves out {missing}"
