"""Imports every module's tables so that SQLAlchemy metadata (and Alembic) sees the whole schema."""

import importlib
import pkgutil
from pathlib import Path


def load_all() -> None:
    import smartcity.core.models  # noqa: F401
    import smartcity.core.notify  # noqa: F401

    package = Path(__file__).parent
    for info in pkgutil.iter_modules([str(package)]):
        if info.ispkg and info.name != "core" and (package / info.name / "models.py").exists():
            importlib.import_module(f"smartcity.{info.name}.models")
