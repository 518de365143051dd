"""Every labeller takes any text, in time linear in its length."""

from helpers import FUZZ, at_most
from hypothesis import given
from hypothesis import strategies as st

from charnn.errors import CharnnError
from charnn.probe.labels import code_features, features_for, task_features, tweet_features
from charnn.tasks import TASK_NAMES

LABEL_TEXT = st.text(
    alphabet=st.characters() | st.sampled_from(list("\"'#/*\\\n\r\t ({[]})@:.&;“”aAbBxXYc")), max_size=300
)


@FUZZ
@given(LABEL_TEXT, st.integers(min_value=-2, max_value=12))
def test_code_and_tweet_labellers_take_any_text(text, tab_width):
    with at_most(20):
        try:
            features = code_features(text, tab_width=tab_width)
        except CharnnError:
            assert tab_width < 1
            features = code_features(text)
        features.update(tweet_features(text))
    for feature in features.values():
        assert feature.values.shape == feature.targets.shape == (len(text),)


@FUZZ
@given(
    LABEL_TEXT,
    st.sampled_from([*TASK_NAMES, "task:count", "nope", ""]),
    st.sampled_from(["task", "code", "tweets", "nope"]),
)
def test_task_labellers_and_the_dispatch_take_any_text(text, task, kind):
    with at_most(20):
        for call in (lambda: task_features(text, task), lambda: features_for(kind, text, task)):
            try:
                features = call()
            except CharnnError:
                continue
            for feature in features.values():
                assert feature.values.shape == feature.targets.shape == (len(text),)


def test_labellers_stay_linear_on_pathological_text():
    for text in [
        '"' * 100_000,
        "/*" * 50_000,
        "#" * 100_000,
        "'''" * 30_000,
        "\\" * 100_000,
        "http://" * 15_000,
        "@#" * 50_000,
        "a" * 100_000,
        "“" * 100_000,
        " \t" * 50_000 + "\n",
    ]:
        with at_most(30):
            code_features(text)
            tweet_features(text)
            for task in TASK_NAMES:
                task_features(text, task)
