"""The sources of a job: landed files, JDBC tables, REST APIs, Kafka topics and change feeds
(``sources.<name>`` in a job's YAML). See docs/sources.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class JdbcCredentials:
    """Where a JDBC source's user and password come from: two environment variables, or an AWS
    Secrets Manager secret (JSON with ``username`` and ``password``). Never the values."""

    user_env: str = ""
    password_env: str = ""
    secret_id: str = ""
    #: Region of the secret (default: the AWS chain's region).
    region: str = ""


@dataclass(frozen=True)
class JdbcIncremental:
    """Incremental extraction by a watermark column (a timestamp, a date or an increasing id)."""

    column: str
    #: Re-read rows this far behind the stored watermark (late commits): ``"10 minutes"``,
    #: ``"2 hours"``, ``"1 day"`` for time columns, a number (``"500"``) for id columns.
    lookback: str = ""
    #: Time columns: rows more than this after the run's start (UTC) are quarantined and never
    #: move the watermark (a sentinel ``2099-01-01`` would otherwise skip every later row).
    #: Wide by default for databases that store local time; narrow it when they store UTC.
    max_skew: str = "1 day"


@dataclass(frozen=True)
class JdbcPartitioning:
    """Parallel read: ``num_partitions`` ranges of ``column`` between its min and max."""

    column: str
    num_partitions: int = 4


@dataclass(frozen=True)
class JdbcRetry:
    """Bounded retries of a JDBC extract (read and stage) whose connection failed or went away
    (SQLState class 08, PostgreSQL 57P01-57P03): ``attempts`` in all, waiting
    ``backoff_s * 2^(n-1)`` before retry n."""

    attempts: int = 3
    backoff_s: float = 1.0


@dataclass(frozen=True)
class JdbcConfig:
    """A table (or a query) of a database reached over JDBC."""

    url: str
    driver: str
    #: ``schema.table``; or give ``query`` instead.
    table: str = ""
    query: str = ""
    credentials: JdbcCredentials = field(default_factory=JdbcCredentials)
    incremental: JdbcIncremental | None = None
    partitioning: JdbcPartitioning | None = None
    fetch_size: int = 10000
    #: Any other option of Spark's JDBC source, passed as they are.
    options: dict[str, str] = field(default_factory=dict)
    retry: JdbcRetry = field(default_factory=JdbcRetry)


@dataclass(frozen=True)
class CdcConfig:
    """How a change feed is applied to its target (README "Change data capture")."""

    #: The key columns of the captured rows.
    keys: list[str]
    #: The feed's log position (``a.b`` for a struct field; a number or a PostgreSQL text LSN)
    #: and its change time (epoch milliseconds): events are ordered by position, then time.
    position: str = "source.lsn"
    timestamp: str = "ts_ms"
    #: ``hard`` removes deleted rows; ``soft`` keeps them with ``_deleted`` and ``_deleted_at``.
    deletes: Literal["hard", "soft"] = "hard"
    #: ``scd1``: one row per key (the latest); ``scd2``: every version with validity.
    output: Literal["scd1", "scd2"] = "scd1"
    #: scd1 with hard deletes: keep the deletes' keys so that older events arriving later do not
    #: bring deleted rows back (``<warehouse>/_etl/cdc/<job>/<source>/tombstones``).
    tombstones: bool = True
    #: pg_logical: the replication slot (created when missing) and its output plugin. The table
    #: (``jdbc.table``, names as PostgreSQL stores them, case-sensitive) needs ``REPLICA
    #: IDENTITY FULL``; see `etl.readers.pg_logical`.
    slot: str = ""
    plugin: Literal["wal2json"] = "wal2json"


@dataclass(frozen=True)
class RestAuth:
    """The auth header of a REST source: ``<header>: <scheme> <token>``, the token read from an
    environment variable or from an AWS Secrets Manager secret (a JSON key, or the whole secret
    string when ``secret_key`` is empty). Never the value itself."""

    token_env: str = ""
    secret_id: str = ""
    secret_key: str = "token"
    #: Region of the secret (default: the AWS chain's region).
    region: str = ""
    header: str = "Authorization"
    #: Put before the token (``Bearer``); empty sends the token alone (API-key headers).
    scheme: str = "Bearer"


@dataclass(frozen=True)
class RestPagination:
    """How the pages of a REST source follow each other.

    ``page``: ``page_param`` counts from ``start_page``, ``size_param=page_size``; ``offset``:
    ``offset_param`` advances by ``page_size``, ``size_param=page_size``; both end at a page with
    fewer than ``page_size`` records. ``cursor``: the token at ``cursor_path`` in a page's body
    goes to ``cursor_param`` of the next request, until it is missing or empty. ``link``: the
    ``rel="next"`` URL of the ``Link`` header, until there is none. ``none``: one request."""

    style: Literal["none", "page", "offset", "cursor", "link"] = "none"
    page_size: int = 100
    size_param: str = "per_page"
    page_param: str = "page"
    start_page: int = 1
    offset_param: str = "offset"
    cursor_param: str = "cursor"
    cursor_path: str = "next"
    #: A source that keeps answering with more pages fails after this many.
    max_pages: int = 10000


@dataclass(frozen=True)
class RestRetry:
    """Bounded retries of one request (urllib3's ``Retry``, see `etl.readers.rest`): at most
    ``attempts`` in all; after a connection error, a timeout, a 429 or 5xx answer or a body that
    is not JSON, retry n waits ``backoff_s * 2^(n-1)`` (at most ``max_backoff_s``, with jitter),
    or the answer's ``Retry-After`` (at most ``max_retry_after_s``)."""

    attempts: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 120.0


@dataclass(frozen=True)
class RestIncremental:
    """Incremental extraction: the stored watermark goes to the query parameter ``param``; the
    greatest ``field`` of the records read becomes the next watermark."""

    param: str
    field: str
    kind: Literal["timestamp", "date", "integer"] = "timestamp"
    #: ``timestamp`` and ``date``: records more than this after the run's start (UTC) are
    #: quarantined and never move the watermark (as for JDBC, `JdbcIncremental.max_skew`).
    max_skew: str = "1 day"


@dataclass(frozen=True)
class RestConfig:
    """A JSON REST API endpoint read page by page (`etl.readers.rest`)."""

    url: str
    #: The Spark SQL DDL of one record, e.g. ``"id bigint, name string, updated_at timestamp"``.
    schema: str
    #: Dotted path of the list of records in a page's body; empty when the body is the list.
    records_path: str = ""
    #: Records with a null in any of these columns go to quarantine.
    required: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    auth: RestAuth | None = None
    pagination: RestPagination = field(default_factory=RestPagination)
    incremental: RestIncremental | None = None
    #: Seconds to wait for a connection and for each read of an answer.
    timeout_s: float = 30.0
    retry: RestRetry = field(default_factory=RestRetry)
    #: An answer larger than this (bytes, after decompression; counted as it streams in) fails
    #: the read.
    max_response_bytes: int = 50 * 1024 * 1024
    #: The whole read (every page, retry and wait) must end within this many seconds.
    deadline_s: float = 3600.0
    #: A redirect or next-page link to another origin (scheme, host, port) than ``url``'s:
    #: ``refuse`` (the read fails), or ``without_credentials`` (followed without the ``auth``
    #: header and ``headers``). The credentials never leave ``url``'s origin.
    cross_origin: Literal["refuse", "without_credentials"] = "refuse"


@dataclass(frozen=True)
class KafkaConfig:
    """Topics of a Kafka cluster read with Structured Streaming (`etl.readers.kafka`)."""

    bootstrap_servers: str
    #: Topics to subscribe to; or give ``subscribe_pattern`` instead.
    topics: list[str] = field(default_factory=list)
    subscribe_pattern: str = ""
    #: The Spark SQL DDL of a message's JSON value.
    schema: str = ""
    #: Messages with a null in any of these columns go to quarantine.
    required: list[str] = field(default_factory=list)
    #: Where a first run starts: ``earliest`` or ``latest`` (later runs go on from the
    #: checkpoint).
    starting_offsets: Literal["earliest", "latest"] = "earliest"
    #: ``available_now``: read what is there and stop (scheduled runs); ``processing_time``:
    #: run until stopped, one micro-batch every ``interval``.
    trigger: Literal["available_now", "processing_time"] = "available_now"
    interval: str = "1 minute"
    #: At most this many messages per micro-batch (0: no limit).
    max_offsets_per_trigger: int = 0
    #: Any other option of Spark's Kafka source (``kafka.security.protocol``...), as they are.
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SchemaDrift:
    """What a source does with landed data whose columns differ from its ``columns``
    (docs/sources.md, "Schema drift"). Columns are matched by name whenever the file says them
    (a CSV header, a Parquet footer, JSON keys); a column the file lacks is null for its rows,
    unless the source ``required`` it, which sets the file aside."""

    #: Columns the source does not know: ``rescue`` (kept per row as JSON in
    #: ``_rescued_data``), ``evolve`` (bronze gains them; silver too when its target's
    #: ``schema_policy`` is ``evolve``), ``ignore`` (dropped, named in a note) or ``fail`` (the
    #: file is set aside; a JSON record is quarantined).
    extra: Literal["rescue", "evolve", "ignore", "fail"] = "rescue"
    #: A file that cannot be used: ``set_aside`` (recorded as a dead letter; the other files are
    #: published and the run ends with a warning) or ``fail`` (the run fails, nothing published).
    on_bad_file: Literal["set_aside", "fail"] = "set_aside"


@dataclass(frozen=True)
class SourceConfig:
    """A source: a folder of landed files (relative to the landing root unless it is a URI), a
    database table over JDBC (``type: jdbc`` with a ``jdbc`` section), a REST API (``type: rest``
    with a ``rest`` section), Kafka topics (``type: kafka`` with a ``kafka`` section), or a change
    feed with a ``cdc`` section: a Delta table's Change Data Feed (``type: delta_cdf``, ``path``
    relative to the warehouse root unless it is a URI) or a PostgreSQL table through a logical
    replication slot (``type: pg_logical``, ``jdbc.table``)."""

    path: str = ""
    type: Literal["files", "jdbc", "rest", "kafka", "delta_cdf", "pg_logical"] = "files"
    format: Literal["csv", "json", "jsonl", "parquet", "delta", "text"] = "csv"
    pattern: str = "*"
    #: Column names in file order; every column is read as a string into bronze.
    columns: list[str] = field(default_factory=list)
    #: Spark reader options (header, delimiter, encoding...).
    options: dict[str, str] = field(default_factory=dict)
    #: ``append``: every file adds rows (facts); ``snapshot``: the newest file is the whole table.
    kind: Literal["append", "snapshot"] = "append"
    jdbc: JdbcConfig | None = None
    cdc: CdcConfig | None = None
    rest: RestConfig | None = None
    kafka: KafkaConfig | None = None
    #: The target (a name under ``targets``) the source's rows land in, as read (bronze).
    bronze: str | None = None
    #: Typing of the landed columns: column -> Spark SQL type (``int``, ``decimal(15,2)``,
    #: ``timestamp``...); a present value that does not parse sends its row to quarantine.
    types: dict[str, str] = field(default_factory=dict)
    #: Columns that must hold a value after typing (keys, for instance).
    required: list[str] = field(default_factory=list)
    #: Landed values that mean "missing" (``NA``, ``""``); other values are trimmed.
    na_values: list[str] = field(default_factory=list)
    #: Text files: a row whose typed columns hold bytes the file's encoding cannot decode goes
    #: to quarantine.
    reject_undecodable: bool = True
    #: A function of the job's transforms module adding columns to the typed rows
    #: (DataFrame -> DataFrame), before de-duplication and the logical-date filter.
    derive: str | None = None
    #: As a reference: one row per key, the latest version by ``sequence_by`` (for files, by
    #: default the file's modification time, then its name).
    keys: list[str] = field(default_factory=list)
    sequence_by: list[str] = field(default_factory=list)
    #: The quarantine table of rows that fail typing; default: the table of the target the
    #: source feeds, else the source's name.
    quarantine: str | None = None
    #: What landed data whose columns differ from ``columns`` does (default: the job's
    #: top-level ``schema_drift``, key by key).
    schema_drift: SchemaDrift = field(default_factory=SchemaDrift)

