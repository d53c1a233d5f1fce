"""Helpers the participation tests share (plain functions; fixtures are in tests/conftest.py)."""

from __future__ import annotations

from sqlalchemy import text

NOW = "2026-01-01 00:00:00.000000"


def insert_users_and_a_proposal(connection, usernames: tuple[str, ...]) -> None:
    """Citizens (ids 1, 2, … in order) and one open proposal by the first, written in SQL: for a store
    migrated only part of the way, where the models do not match the tables yet."""
    for name in usernames:
        connection.execute(
            text(
                "INSERT INTO users (username, display_name, password_hash, role, active, created_at)"
                " VALUES (:n, '', 'x', 'citizen', 1, :t)"
            ),
            {"n": name, "t": NOW},
        )
    connection.execute(
        text(
            "INSERT INTO participation_proposals (author_id, title, body, category, status, likes, participants,"
            " created_at, closes_at, hidden) VALUES (1, '제안', '본문', 'other', 'open', 0, 0, :t, :t, 0)"
        ),
        {"t": NOW},
    )
