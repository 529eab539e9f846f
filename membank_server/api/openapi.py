"""The OpenAPI document, completed with the rules the server enforces.

Litestar derives the schema from the msgspec Structs, but some rules do not survive
that (or cannot be known before the server is configured). This module writes them
into the generated document once, when the app is built, so that a schema-valid
request is one the server accepts:

* request bodies accept no unknown fields (``additionalProperties: false``);
* a vector has exactly the server's dimension, finite components within ±1e6, and
  is not all zeros;
* text is at most ``limits.content_max_chars`` characters and holds no NUL; metadata
  values are any JSON without NUL characters (PostgreSQL cannot store one);
* a batch holds 1 to ``limits.batch_max_items`` memories;
* a search gives ``query`` or ``vector``, not both; metadata filter keys follow their
  pattern; a union of integer and number is ``anyOf`` (``1`` is both, so ``oneOf``
  would refuse it);
* an API key's scope decides which of ``user_id`` and ``team`` it takes, and an
  admin key has scope ``all`` (``if``/``then``);
* links from a created memory (id and user) and a created key (id) to the
  operations that use them, for clients and for stateful testing.
"""

from __future__ import annotations

from collections.abc import Iterable

from litestar.openapi.spec import Link, OpenAPI, Reference, Schema
from litestar.openapi.spec.enums import OpenAPIType

from membank_server.api.schemas import METADATA_KEY
from membank_server.services.access import CONFIGURED_ADMIN
from membank_server.services.inputs import VECTOR_BOUND, Limits

__all__ = ["NO_NUL", "state_server_rules"]

#: What every text field takes: anything but NUL.
NO_NUL = "^[^\\u0000]*$"

_INPUTS = (
    "MemoryCreate", "MemoryUpdate", "BatchCreate", "SearchBody", "SearchFilters",
    "MetadataOp", "KeyCreate", "WarmupBody", "TunableChange", "TuningEventBody", "BackupRun",
)  # fmt: skip
_JSON = "JsonValue"


def _branches(schema: Schema | Reference) -> Iterable[Schema]:
    """The schema itself and the members of its oneOf (an optional field)."""
    if isinstance(schema, Schema):
        yield schema
        for member in schema.one_of or ():
            if isinstance(member, Schema):
                yield member


def _vector(schema: Schema | Reference, dimension: int) -> None:
    for branch in _branches(schema):
        if branch.type == OpenAPIType.ARRAY:
            branch.min_items = branch.max_items = dimension
            branch.items = Schema(
                type=OpenAPIType.NUMBER, minimum=-VECTOR_BOUND, maximum=VECTOR_BOUND
            )
            # Not every component zero: a zero vector has no direction to compare.
            branch.schema_not = Schema(items=Schema(const=0))


def _json_value() -> Schema:
    ref = Reference(ref=f"#/components/schemas/{_JSON}")
    return Schema(
        description="any JSON value without NUL characters",
        one_of=[
            Schema(type=OpenAPIType.STRING, pattern=NO_NUL),
            Schema(type=[OpenAPIType.NUMBER, OpenAPIType.BOOLEAN, OpenAPIType.NULL]),
            Schema(type=OpenAPIType.ARRAY, items=ref),
            Schema(
                type=OpenAPIType.OBJECT,
                additional_properties=ref,
                property_names=Schema(pattern=NO_NUL),
            ),
        ],
    )


def _metadata(schema: Schema | Reference) -> None:
    for branch in _branches(schema):
        if branch.type == OpenAPIType.OBJECT:
            branch.additional_properties = Reference(ref=f"#/components/schemas/{_JSON}")
            branch.property_names = Schema(pattern=NO_NUL)


def _key_rules(key: Schema, reserved: str) -> None:
    def when(field: str, value: str, *, required: bool) -> Schema:
        return Schema(
            properties={field: Schema(const=value)}, required=[field] if required else None
        )

    null = Schema(type=OpenAPIType.NULL)
    text = Schema(type=OpenAPIType.STRING)
    name = (key.properties or {}).get("name")
    if isinstance(name, Schema):
        name.schema_not = Schema(const=reserved)  # the name of the configured admin key
    key.all_of = [
        # An admin key acts for every user.
        Schema(
            schema_if=when("role", "admin", required=True),
            then=Schema(properties={"scope": Schema(const="all")}, required=["scope"]),
        ),
        # Scope own (the default) is bound to one user, team to one team, all to none.
        Schema(
            schema_if=when("scope", "own", required=False),
            then=Schema(properties={"user_id": text, "team": null}, required=["user_id"]),
        ),
        Schema(
            schema_if=when("scope", "team", required=True),
            then=Schema(properties={"team": text, "user_id": null}, required=["team"]),
        ),
        Schema(
            schema_if=when("scope", "all", required=True),
            then=Schema(properties={"user_id": null, "team": null}),
        ),
    ]


def _link(operation_id: str, **parameters: str) -> Link:
    return Link(operation_id=operation_id, parameters=dict(parameters))


def _links(document: OpenAPI) -> None:
    memory = {"memory_id": "$response.body#/id", "user_id": "$response.body#/user_id"}
    key = {"key_id": "$response.body#/key/id"}
    wanted = {
        ("/v1/memories", "post", "201"): {
            f"{name}": _link(name, **memory)
            for name in ("get_memory", "update_memory", "get_memory_history", "delete_memory")
        },
        ("/v1/admin/keys", "post", "201"): {
            name: _link(name, **key) for name in ("get_api_key", "revoke_api_key")
        },
    }
    for (path, method, status), links in wanted.items():
        item = document.paths.get(path) if document.paths else None
        operation = getattr(item, method, None)
        response = (operation.responses or {}).get(status) if operation else None
        if response is not None and not isinstance(response, Reference):
            response.links = {**(response.links or {}), **links}


def _text(schema: Schema | Reference, max_chars: int) -> None:
    for branch in _branches(schema):
        branch.max_length = max_chars


def _overlapping_unions(schema: Schema) -> None:
    """``oneOf`` [integer, number, ...] as ``anyOf``, throughout ``schema`` (iteratively)."""
    stack: list[object] = [schema]
    while stack:
        node = stack.pop()
        if not isinstance(node, Schema):
            continue
        types = {
            m.type
            for m in node.one_of or ()
            if isinstance(m, Schema) and not isinstance(m.type, list)
        }
        if {OpenAPIType.INTEGER, OpenAPIType.NUMBER} <= types:
            node.any_of, node.one_of = node.one_of, None
        for child in (
            *(node.one_of or ()), *(node.any_of or ()), *(node.all_of or ()),
            *(node.properties or {}).values(), node.items, node.additional_properties,
        ):  # fmt: skip
            stack.append(child)


def state_server_rules(document: OpenAPI, dimension: int, limits: Limits) -> None:
    """Write the rules of the module docs into ``document`` (in place, once)."""
    components = document.components
    schemas = components.schemas if components is not None else None
    if schemas is None:
        return

    def field(name: str, prop: str) -> Schema | Reference | None:
        return (schemas[name].properties or {}).get(prop) if name in schemas else None

    schemas[_JSON] = _json_value()
    for name in _INPUTS:
        if name in schemas:
            schemas[name].additional_properties = False
    for name in ("MemoryCreate", "MemoryUpdate", "SearchBody"):
        if (vector := field(name, "vector")) is not None:
            _vector(vector, dimension)
    for name in ("MemoryCreate", "MemoryUpdate"):
        if (metadata := field(name, "metadata")) is not None:
            _metadata(metadata)
    for name, prop in (("MemoryCreate", "content"), ("MemoryUpdate", "content")):
        if (text := field(name, prop)) is not None:
            _text(text, limits.content_max_chars)
    if (query := field("SearchBody", "query")) is not None:
        _text(query, limits.content_max_chars)
    if "SearchBody" in schemas:
        # A text or a vector, not both.
        schemas["SearchBody"].one_of = [
            Schema(properties={"query": Schema(type=OpenAPIType.STRING)}, required=["query"]),
            Schema(properties={"vector": Schema(type=OpenAPIType.ARRAY)}, required=["vector"]),
        ]
    for prop in ("dense_weight", "recency_weight"):
        if isinstance(share := field("SearchBody", prop), Schema):
            share.minimum = 0.0  # the generator drops a bound of 0
    if (batch := field("BatchCreate", "memories")) is not None:
        for branch in _branches(batch):
            branch.min_items, branch.max_items = 1, limits.batch_max_items
    if (filters := field("SearchFilters", "metadata")) is not None:
        for branch in _branches(filters):
            branch.property_names = Schema(pattern=METADATA_KEY)
    for schema in schemas.values():
        _overlapping_unions(schema)
    if "KeyCreate" in schemas:
        _key_rules(schemas["KeyCreate"], CONFIGURED_ADMIN)
    _links(document)
