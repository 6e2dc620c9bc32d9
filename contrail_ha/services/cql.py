"""The asyncio bridge to cassandra-driver shared by our stores: no thread per query.

``execute_async`` callbacks run on the driver's event thread; they resolve an asyncio future
through ``loop.call_soon_threadsafe``. Every page of a result is fetched before it resolves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from cassandra import InvalidRequest
from cassandra.cluster import ResponseFuture, Session

T = TypeVar("T")


async def execute(session: Session, stmt: Any, params: Sequence[Any] | None = None) -> list[Any]:
    """Run one statement; all its rows. Driver exceptions propagate unchanged."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[list[Any]] = loop.create_future()
    rows: list[Any] = []

    def settle(result: Any, exc: BaseException | None) -> None:
        if fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)

    def post(result: Any, exc: BaseException | None) -> None:
        try:
            loop.call_soon_threadsafe(settle, result, exc)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    rf: ResponseFuture = session.execute_async(stmt, params)

    def on_page(page: Any) -> None:
        if page:
            rows.extend(page)
        try:
            if rf.has_more_pages:
                rf.start_fetching_next_page()
                return
        except Exception as e:
            post(None, e)
            return
        post(rows, None)

    rf.add_callbacks(on_page, lambda e: post(None, e))
    return await fut


def when_visible(prepare: Callable[[], T], timeout: float = 10.0) -> T:
    """Run ``prepare`` (statement preparation) until the tables it names are visible to the node it asks.

    Right after several replicas created a table concurrently, a node can list it in
    ``system_schema`` a moment before it accepts statements on it ("table ... does not exist").
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return prepare()
        except InvalidRequest as e:
            if "does not exist" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
