"""OpenAI's official OpenAPI document as JSON Schema validators, for checking what the gateway answers.

The document lives outside the repository, in ``shared/specs/openai-openapi.yaml`` beside the clone
(:data:`SPEC_PATH`). :func:`load` parses it once per process and returns :class:`OpenApiSchemas`,
whose :meth:`~OpenApiSchemas.problems` validates a body against ``#/components/schemas/<name>``.

The whole document is the root resource of a :class:`referencing.Registry`, so every ``$ref`` into
``#/components/schemas/...`` resolves as written. Two adjustments make it plain JSON Schema 2020-12:

* ``nullable: true`` (OpenAPI 3.0's spelling of "or null") becomes ``anyOf: [<schema>, {type: null}]``.
  The document says ``openapi: 3.1.0`` but still uses ``nullable`` in places (for instance on a
  chunk's ``finish_reason``), where a literal 3.1 reading would ignore it and reject ``null``;
  converting keeps OpenAI's evident meaning. For a 3.0 document the boolean ``exclusiveMinimum`` /
  ``exclusiveMaximum`` of draft 4 become numbers as well.
* YAML scalars JSON has no type for (an unquoted date in an example) become strings.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import yaml  # type: ignore[import-untyped]
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REPO_ROOT = Path(__file__).resolve().parent.parent
SPEC_PATH = REPO_ROOT.parent / "shared" / "specs" / "openai-openapi.yaml"
SPEC_URI = "urn:openai:openapi"


@dataclass
class OpenApiSchemas:
    """The parsed document and a validator per component schema, made on first use."""

    spec: dict[str, Any] = field(repr=False)
    registry: Registry[Any] = field(repr=False)
    _validators: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def version(self) -> str:
        return str(self.spec["openapi"])

    def schema(self, name: str) -> dict[str, Any]:
        schemas: dict[str, dict[str, Any]] = self.spec["components"]["schemas"]
        return schemas[name]

    def problems(self, name: str, instance: object) -> list[str]:
        """Every way ``instance`` breaks ``#/components/schemas/<name>``, one readable line each."""
        validator = self._validator(name)
        errors = sorted(
            validator.iter_errors(instance), key=lambda e: (e.json_path, [str(s) for s in e.schema_path])
        )
        return [line for error in errors for line in self._describe(name, error)]

    def assert_conforms(self, name: str, instance: object, what: str = "the body") -> None:
        problems = self.problems(name, instance)
        assert not problems, (
            f"{what} does not conform to OpenAI's {name} (openapi {self.version}):\n  "
            + "\n  ".join(problems)
            + f"\nbody: {instance!r}"
        )

    def _validator(self, name: str) -> Any:
        if name not in self._validators:
            self.schema(name)  # a KeyError names a schema the document does not have
            self._validators[name] = jsonschema.Draft202012Validator(
                {"$ref": f"{SPEC_URI}#/components/schemas/{name}"},
                registry=self.registry,
                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
            )
        return self._validators[name]

    def _describe(self, name: str, error: Any, depth: int = 0) -> Iterable[str]:
        """``$.choices[0]: 'logprobs' is a required property  [required @ #/components/schemas/...]``;
        under an ``anyOf``/``oneOf``, why each branch failed, indented."""
        rule = f"{error.validator} @ {self._pointer(name, error.absolute_schema_path)}"
        yield f"{'    ' * depth}{error.json_path}: {_short(error.message)}  [{rule}]"
        for sub in sorted(error.context or (), key=lambda e: [str(s) for s in e.schema_path]):
            yield from self._describe(name, sub, depth + 1)

    def _pointer(self, name: str, schema_path: Iterable[str | int]) -> str:
        """Where in the document the broken rule is. jsonschema leaves ``$ref`` out of schema paths,
        so a step the current schema lacks means its ``$ref`` was followed. (``anyOf/1`` under a
        property the document marks ``nullable`` is the ``{type: null}`` branch the conversion added.)"""
        steps = list(schema_path)
        resolver = self.registry.resolver(base_uri=SPEC_URI)
        node: Any = {"$ref": f"#/components/schemas/{name}"}
        pointer = ""
        try:
            for step in steps:
                while isinstance(node, dict) and isinstance(node.get("$ref"), str) and step not in node:
                    pointer = node["$ref"].partition("#")[2]
                    node = resolver.lookup(node["$ref"]).contents
                if step == "$ref":
                    continue
                node = node[step]
                pointer += "/" + str(step).replace("~", "~0").replace("/", "~1")
        except (KeyError, IndexError, TypeError):
            return f"#/components/schemas/{name} > " + "/".join(map(str, steps))
        return "#" + pointer


# Bump when _normalise changes, so that no cache keeps what an older version made.
_NORMALISED_BY = 1


@functools.cache
def load(path: Path = SPEC_PATH, cache_dir: Path | None = None) -> OpenApiSchemas:
    """Parse the document and register it for ``$ref`` resolution, once per process.

    Parsing the ~3 MB of YAML takes over a second; with a ``cache_dir`` (pytest's cache) the
    normalised document is also kept there as JSON, keyed by the file's hash, for the next run.
    """
    data = path.read_bytes()
    cached = None
    if cache_dir is not None:
        digest = hashlib.sha256(data).hexdigest()[:16]
        cached = cache_dir / f"openai-openapi-{digest}-v{_NORMALISED_BY}.json"
        if cached.is_file():
            return _register(json.loads(cached.read_bytes()))
    raw = yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    version = str(raw.get("openapi", ""))
    if not version.startswith(("3.0.", "3.1.")):
        raise ValueError(f"{path}: openapi {version!r} is neither 3.0 nor 3.1")
    spec = _normalise(raw, draft4_bounds=version.startswith("3.0."))
    if cached is not None:
        temp = cached.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps(spec), encoding="utf-8")
        temp.replace(cached)
    return _register(spec)


def _register(spec: dict[str, Any]) -> OpenApiSchemas:
    resource: Resource[Any] = Resource.from_contents(spec, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    return OpenApiSchemas(spec, registry)


def _normalise(node: Any, *, draft4_bounds: bool) -> Any:
    if isinstance(node, list):
        return [_normalise(item, draft4_bounds=draft4_bounds) for item in node]
    if isinstance(node, datetime.date):
        return node.isoformat()
    if not isinstance(node, dict):
        return node
    result = {str(key): _normalise(value, draft4_bounds=draft4_bounds) for key, value in node.items()}
    if draft4_bounds:
        for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            exclusive = result.get(bound)
            if isinstance(exclusive, bool):
                del result[bound]
                if exclusive and limit in result:
                    result[bound] = result.pop(limit)
    nullable = result.get("nullable")
    if isinstance(nullable, bool):
        del result["nullable"]
        if nullable:
            return {"anyOf": [result, {"type": "null"}]}
    return result


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
