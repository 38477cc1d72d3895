"""OpenAI's response shapes as JSON Schema validators, for checking what the gateway answers.

The shapes are the repo's own (:data:`tests.openai_shapes.DOCUMENT`, written from OpenAI's API
reference), so the checks run on any clone. :func:`load` registers that document once per process
and returns :class:`OpenApiSchemas`, whose :meth:`~OpenApiSchemas.problems` validates a body against
``#/components/schemas/<name>`` and says, for each broken rule, where in the document it is.

>>> load().problems("ErrorResponse", {"error": {"message": "x", "type": "y", "param": None}})
["$.error: 'code' is a required property  [required @ #/components/schemas/Error/required]"]
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import openai
import pydantic
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.openai_shapes import DOCUMENT

SPEC_URI = "urn:iflow2api:openai-shapes"


@dataclass
class OpenApiSchemas:
    """The document and a validator per component schema, made on first use."""

    spec: dict[str, Any] = field(repr=False)
    registry: Registry[Any] = field(repr=False)
    _validators: dict[str, Any] = field(default_factory=dict, repr=False)

    def schema(self, name: str) -> dict[str, Any]:
        schemas: dict[str, dict[str, Any]] = self.spec["components"]["schemas"]
        return schemas[name]

    def problems(self, name: str, instance: object) -> list[str]:
        """Every way ``instance`` breaks ``#/components/schemas/<name>``, one readable line each,
        and every way it fails the OpenAI SDK's own type for it (:func:`sdk_problems`)."""
        validator = self._validator(name)
        errors = sorted(
            validator.iter_errors(instance), key=lambda e: (e.json_path, [str(s) for s in e.schema_path])
        )
        return [line for error in errors for line in self._describe(name, error)] + sdk_problems(
            name, instance
        )

    def assert_conforms(self, name: str, instance: object, what: str = "the body") -> None:
        problems = self.problems(name, instance)
        assert not problems, (
            f"{what} does not conform to OpenAI's {name} (tests/openai_shapes.py):\n  "
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
        so a step the current schema lacks means its ``$ref`` was followed."""
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


# The OpenAI SDK's types, generated from OpenAI's own OpenAPI document: a second judge beside the
# shapes written down here, so a rule misread there is still caught by the vendor's reading.
_SDK_TYPES: dict[str, Any] = {
    "CreateChatCompletionResponse": openai.types.chat.ChatCompletion,
    "CreateChatCompletionStreamResponse": openai.types.chat.ChatCompletionChunk,
    "Model": openai.types.Model,
    "Response": openai.types.responses.Response,
    "ResponseStreamEvent": openai.types.responses.ResponseStreamEvent,
}


@functools.cache
def _sdk_adapter(name: str) -> pydantic.TypeAdapter[Any] | None:
    sdk_type = _SDK_TYPES.get(name)
    return None if sdk_type is None else pydantic.TypeAdapter(sdk_type)


def sdk_problems(name: str, instance: object) -> list[str]:
    """How ``instance`` fails the OpenAI SDK's type for ``name`` (strictly: no coercion), if it has one.

    >>> sdk_problems("Model", {"id": "m", "object": "model", "created": 0})
    ['sdk Model: owned_by: Field required']
    """
    adapter = _sdk_adapter(name)
    if adapter is None:
        return []
    try:
        adapter.validate_python(instance, strict=True)
    except pydantic.ValidationError as error:
        label = getattr(_SDK_TYPES[name], "__name__", name)
        return [
            f"sdk {label}: {'.'.join(map(str, problem['loc'])) or '$'}: {problem['msg']}"
            for problem in error.errors()
        ]
    return []


@functools.cache
def load() -> OpenApiSchemas:
    """Register the document for ``$ref`` resolution, once per process."""
    resource: Resource[Any] = Resource.from_contents(DOCUMENT, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    return OpenApiSchemas(DOCUMENT, registry)


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
