"""Imports every module's tables so that SQLAlchemy metadata (and Alembic) sees the whole schema."""

import importlib


def load_all() -> None:
    import smartcity.core.models  # noqa: F401
    import smartcity.core.notify  # noqa: F401
    import smartcity.core.places  # noqa: F401
    from smartcity.core.module import discover, model_paths

    for path in model_paths(discover()):
        importlib.import_module(path)
