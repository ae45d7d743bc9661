"""The curated question corpus: schema, loading with file:line errors, and coverage."""

from app.corpus.loader import CorpusError, CorpusIssue, check_corpus, load_corpus
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

__all__ = [
    "Corpus",
    "CorpusError",
    "CorpusIssue",
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
]
