"""The labels a probe ranks units against, one module per family: code, tweets, tasks (charnn.probe.labels.base
has the position convention all of them share; charnn.probe.labels.lexer finds strings and comments)."""

from collections.abc import Callable

from charnn.errors import CharnnError
from charnn.probe.labels.base import Feature
from charnn.probe.labels.code import code_features
from charnn.probe.labels.tasks import task_features
from charnn.probe.labels.tweets import tweet_features

__all__ = ["FEATURE_SETS", "Feature", "code_features", "features_for", "task_features", "tweet_features"]

FEATURE_SETS: dict[str, Callable[[str], dict[str, Feature]]] = {
    "code": code_features,
    "tweets": tweet_features,
}


def features_for(kind: str, text: str, task: str | None = None, language: str | None = None) -> dict[str, Feature]:
    """Dispatch on --features code|tweets|task (language: see code_features); CharnnError for an unknown kind."""
    if kind == "task":
        if not task:
            raise CharnnError("--features task needs a task name: count, selective-count, ab-memory or copy")
        return task_features(text, task)
    if kind not in FEATURE_SETS:
        known = ", ".join([*sorted(FEATURE_SETS), "task"])
        raise CharnnError(f"unknown feature set {kind!r}; known feature sets: {known}")
    if kind == "code":
        return code_features(text, language=language)
    return FEATURE_SETS[kind](text)
