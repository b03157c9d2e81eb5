"""The database going away in the middle of a request: the API answers 503 with Retry-After, never 500."""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event

from models.db import get_engine


@contextmanager
def connection_lost_at(sql_start: str):
    """The first statement starting with `sql_start` finds its connection closed under it, as a database restart
    leaves it: the driver raises its own error (SQLite: ProgrammingError, psycopg2: InterfaceError), which
    SQLAlchemy recognises as a lost connection, not an OperationalError."""
    lost = []

    def close_connection(connection, cursor, statement, parameters, context, executemany):
        if not lost and statement.lstrip().startswith(sql_start):
            lost.append(statement)
            connection.connection.dbapi_connection.close()

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", close_connection)
    try:
        yield lost
    finally:
        event.remove(engine, "before_cursor_execute", close_connection)


def test_a_connection_lost_mid_request_answers_503_and_the_next_request_works(people):
    ada = people["ada"].client
    with connection_lost_at("SELECT") as lost:
        answer = ada.get("/api/v1/exports")
    assert lost, "no statement ran"
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "5"
    assert answer.json() == {"detail": "the database is unavailable for a moment; retry shortly"}
    again = ada.get("/api/v1/exports")  # the pool replaced the lost connection
    assert again.status_code == 200 and again.json()["total"] == 0


def test_a_lost_insert_answers_503_and_keeps_nothing(people):
    ada = people["ada"].client
    with connection_lost_at("INSERT INTO export ") as lost:
        answer = ada.post("/api/v1/exports", json={"project": "alps", "resolution": 480})
    assert lost and answer.status_code == 503, answer.text
    assert ada.get("/api/v1/exports").json()["total"] == 0  # nothing half-written: the order was not taken
