"""Tables on a real database: aware datetimes survive the round trip, naive ones are refused."""

from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import StatementError

from models.tables import User


def test_datetimes_come_back_timezone_aware(session):
    user = User(name="ada")
    session.add(user)
    session.commit()
    session.expire_all()
    loaded = session.get(User, user.id)
    assert loaded.created_at.tzinfo is not None
    assert loaded.created_at.utcoffset().total_seconds() == 0


def test_naive_datetimes_are_refused(session):
    session.add(User(name="bob", created_at=datetime(2024, 1, 1)))
    with pytest.raises(StatementError, match="naive datetime"):
        session.commit()
    session.rollback()
    session.add(User(name="bob", created_at=datetime(2024, 1, 1, tzinfo=UTC)))
    session.commit()
