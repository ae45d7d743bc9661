"""The curated question corpus: schema, loading with file:line errors, and coverage."""

from app.corpus.loader import (
    CorpusInvalidError,
    CorpusIssue,
    CorpusReport,
    check_corpus,
    load_corpus,
    read_corpus,
)
from app.corpus.models import (
    Corpus,
    Criterion,
    FollowUp,
    Kind,
    Misconception,
    Question,
    Role,
    Rubric,
    TopicInfo,
)
from app.errors import CorpusError

__all__ = [
    "Corpus",
    "CorpusError",
    "CorpusInvalidError",
    "CorpusIssue",
    "CorpusReport",
    "Criterion",
    "FollowUp",
    "Kind",
    "Misconception",
    "Question",
    "Role",
    "Rubric",
    "TopicInfo",
    "check_corpus",
    "load_corpus",
    "read_corpus",
]
