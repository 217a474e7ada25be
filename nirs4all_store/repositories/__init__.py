"""Repositories: data access over a caller's SQLAlchemy Session (they never commit).

An application with its own Session can use them directly::

    with Session(engine) as session, session.begin():
        run_id = RunRepository(session).create("my run")
"""

from nirs4all_store.repositories.artifacts import ArtifactRepository
from nirs4all_store.repositories.chains import ChainRepository
from nirs4all_store.repositories.logs import LogRepository
from nirs4all_store.repositories.pipelines import PipelineRepository
from nirs4all_store.repositories.predictions import PredictionRepository
from nirs4all_store.repositories.runs import RunRepository
from nirs4all_store.repositories.templates import TemplateRepository

__all__ = [
    "ArtifactRepository",
    "ChainRepository",
    "LogRepository",
    "PipelineRepository",
    "PredictionRepository",
    "RunRepository",
    "TemplateRepository",
]
