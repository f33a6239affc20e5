"""The database connection pool and the thread pool that runs peewee off the IOLoop."""

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import peewee
from playhouse import db_url
from playhouse.pool import PooledPostgresqlDatabase
from playhouse.shortcuts import ThreadSafeDatabaseMetadata

from models.schema import Columns

logger = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The database did not answer (lost or refused connection); the next unit of work reconnects.
    handlers/base.py shows it to clients as `unavailable` (503)."""


class BaseModel(peewee.Model):
    """RapidPro owns these tables: chip maps the columns it uses and never creates or migrates.

    Which database a model queries is kept per thread (each Database's workers bind the models to
    it): with one binding for the whole process, a second chip in it (the tests run several)
    would take the models over, and the first one's workers would open connections of the
    second's pool that nothing gives back, until it has none left."""

    class Meta:
        legacy_table_names = False
        model_metadata_class = ThreadSafeDatabaseMetadata


class _CountedDatabase(PooledPostgresqlDatabase):
    """Calls on_query() for every statement sent: what a resume or a page of history costs the
    database shows in chip_db_queries."""

    on_query = None

    def execute_sql(self, sql, params=None, *args, **kwargs):
        if self.on_query is not None:
            self.on_query()
        return super().execute_sql(sql, params, *args, **kwargs)


class Database:
    """RapidPro's PostgreSQL, reached through a bounded pool of connections and worker threads.

    psycopg2 blocks, so every unit of work runs on a worker thread inside `with db:` (one pooled
    connection, one transaction) and never spans an await. A lost or refused connection surfaces as
    DatabaseUnavailable; the pool drops the broken connection and the next unit of work reconnects.
    """

    def __init__(self, url: str, models, pool_size: int = 8, connect_timeout: int = 3, on_query=None):
        params = db_url.parse(url)
        name = params.pop("database")
        self.db = _CountedDatabase(
            name, max_connections=pool_size, stale_timeout=300, timeout=10, connect_timeout=connect_timeout, **params
        )
        self.db.on_query = on_query
        self.db.bind(models)
        self.schema: Columns | None = None  # load_schema() reads it
        self._answered = None  # time.monotonic() of the last unit of work that succeeded
        self._workers = ThreadPoolExecutor(
            max_workers=pool_size, thread_name_prefix="db", initializer=self.db.bind, initargs=(models,)
        )

    async def run(self, work, *args):
        """Run work(*args) on a worker thread in a transaction and return its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._workers, self._unit, work, args, True)

    def _unit(self, work, args, log: bool):
        try:
            with self.db:
                result = work(*args)
            self._answered = time.monotonic()
            return result
        except (peewee.OperationalError, peewee.InterfaceError) as e:
            if log:
                logger.warning("database unavailable: %s", (str(e).strip().splitlines() or [repr(e)])[0])
            raise DatabaseUnavailable("database unavailable") from e

    def answered_within(self, seconds: float) -> bool:
        """Whether a unit of work succeeded in the last `seconds`."""
        return self._answered is not None and time.monotonic() - self._answered < seconds

    async def check(self):
        """Fail with DatabaseUnavailable unless the database answers (quietly: the caller reports it)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._workers, self._unit, self._select_one, (), False)

    async def load_schema(self) -> Columns:
        """Read which of RapidPro's columns this database has, once: SchemaError when chip cannot
        serve it, DatabaseUnavailable when the database does not answer."""
        loop = asyncio.get_running_loop()
        columns = await loop.run_in_executor(self._workers, self._unit, self._read_columns, (), False)
        columns.check()
        self.schema = columns
        logger.debug("RapidPro schema: %s", columns.describe())
        return columns

    def _read_columns(self) -> Columns:
        return Columns.read(self.db.cursor())

    def _select_one(self):
        return self.db.execute_sql("SELECT 1").fetchone()

    def close(self):
        self._workers.shutdown(wait=True)
        self.db.close_all()
