"""Repositories: data access over a caller's SQLAlchemy Session (they never commit).

An application with its own Session can use them directly::

    with Session(engine) as session, session.begin():
        run_id = RunRepository(session).create("my run")
"""

from .artifacts import ArtifactRepository
from .chains import ChainRepository
from .logs import LogRepository
from .pipelines import PipelineRepository
from .predictions import PredictionRepository
from .runs import RunRepository

__all__ = [
    "ArtifactRepository",
    "ChainRepository",
    "LogRepository",
    "PipelineRepository",
    "PredictionRepository",
    "RunRepository",
]
