"""JSON records against a configured schema, shared by the REST and Kafka readers: the schema
from its DDL (checked on the driver), and the Column expressions that parse a record and say
why it does not fit."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from etl.errors import ConfigError
from etl.transforms.functions import values_where

_CORRUPT = "_corrupt_record"


def parse_schema(ddl: str, key: str, columns: Sequence[tuple[str, str]] = ()) -> T.StructType:
    """The struct of a DDL string (``"id bigint, name string"``). `ConfigError` naming ``key``
    when it does not parse, or (``columns``: ``(sub-key, column)`` pairs the configuration
    refers to) when one of those columns is not in it. Needs an active SparkContext."""
    try:
        schema = T._parse_datatype_string(ddl)
    except Exception as exc:  # pyspark raises ParseException or a py4j error, by version
        raise ConfigError(f"not a Spark SQL schema: {ddl!r} ({type(exc).__name__})",
                          key=f"{key}.schema") from None
    if not isinstance(schema, T.StructType):
        raise ConfigError(f"expected column definitions, got {ddl!r}", key=f"{key}.schema")
    for sub_key, column in columns:
        if column not in schema.fieldNames():
            raise ConfigError(f"column {column!r} is not in the schema", key=f"{key}.{sub_key}")
    return schema


def json_fields(
    raw: Column, schema: T.StructType, required: Sequence[str], extra: str = "ignore"
) -> tuple[list[Column], Column]:
    """The schema's columns parsed from the JSON text ``raw`` (null when it does not fit), and
    the array of reasons why it does not fit (empty when it does): ``record does not fit the
    schema <struct>`` when it is not a JSON object of those types, ``<column>: required value
    missing`` for a null in a ``required`` column. Fields the schema does not have follow
    ``extra`` (a source's ``schema_drift.extra``): ``rescue`` (and ``evolve``: a record source's
    schema is declared) adds ``_rescued_data``, the unknown fields as a JSON object (null when
    there are none); ``fail`` adds the reason ``fields [...] are not in the schema``;
    ``ignore`` drops them."""
    with_corrupt = T.StructType([*schema.fields, T.StructField(_CORRUPT, T.StringType())])
    parsed = F.from_json(raw, with_corrupt,
                         {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": _CORRUPT})
    misfit = raw.isNull() | parsed.isNull() | parsed.getField(_CORRUPT).isNotNull()
    checks = [(misfit, F.lit(f"record does not fit the schema {schema.simpleString()}"))]
    checks += [(~misfit & parsed.getField(c).isNull(), F.lit(f"{c}: required value missing"))
               for c in required]
    unknown = unknown_fields(raw, schema)
    if extra == "fail":
        names = F.concat_ws(", ", F.array_sort(F.map_keys(F.from_json(unknown, _MAP))))
        checks.append((~misfit & unknown.isNotNull(),
                       F.format_string("fields [%s] are not in the schema", names)))
    reasons = values_where(checks)
    columns = [F.when(~misfit, parsed.getField(f.name)).alias(f.name) for f in schema.fields]
    if extra in ("rescue", "evolve"):
        columns.append(unknown.alias(RESCUED))
    return columns, reasons


_MAP = "map<string,string>"
#: The column of the fields a record source's schema does not know.
RESCUED = "_rescued_data"


def unknown_fields(raw: Column, schema: T.StructType) -> Column:
    """The fields of the JSON object ``raw`` that ``schema`` does not name, as a JSON object
    (their values as text); null when there are none or ``raw`` is not an object."""
    fields = F.from_json(raw, _MAP)
    known = F.array(*(F.lit(name) for name in schema.fieldNames()))
    unknown = F.map_filter(fields, lambda key, _: ~F.array_contains(known, key))
    return F.when(F.size(unknown) > 0, F.to_json(unknown))


__all__ = ["RESCUED", "json_fields", "parse_schema", "unknown_fields"]
