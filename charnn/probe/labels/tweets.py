"""Tweet labels: inside a #hashtag, an @mention, a URL or a quote; a word in capitals; the position in the tweet."""

import re

import numpy as np

from charnn.probe.labels.base import Feature, chars_into_line, code_points_of, just_before, mask_at, span_mask

_WORD_CHAR = r"[\w\u0300-\u036f]"  # word characters and combining accents (decomposed é)
_HASHTAG = re.compile(rf"(?<![\w&])#(?=\d*[^\W\d]){_WORD_CHAR}+")  # not '&#39;', not '#1'
_MENTION = re.compile(r"(?<![\w@])@[A-Za-z0-9_]+")  # not e-mail addresses
# a scheme, www., or a bare host with a common top-level domain and a path (pic.twitter.com/x, bit.ly/y)
_BARE_HOST = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9-]+)*\.(?:com|org|net|gov|edu|mil|int|info|biz|io|co|ly|gl|me|tv|us|uk|ca|au|de|fr|news)/"
_URL = re.compile(rf"(?P<prefix>(?<![\w/.])(?:https?://|www\.)|(?<![\w/.@-]){_BARE_HOST})\S*", re.IGNORECASE)
_URL_TRAILING_PUNCTUATION = ".,;:!?)]\"'”’…"
_URL_CLOSERS = {")": "(", "]": "["}


def _url_without_trailing_punctuation(url: str) -> str:
    """url without the punctuation that ends the sentence around it; a ) or ] that closes one inside the URL stays."""
    unmatched = {closer: url.count(closer) - url.count(opener) for closer, opener in _URL_CLOSERS.items()}
    end = len(url)
    while end and url[end - 1] in _URL_TRAILING_PUNCTUATION:
        char = url[end - 1]
        if char in unmatched:
            if unmatched[char] <= 0:  # en.wikipedia.org/wiki/Mercury_(planet): it closes one inside the URL
                break
            unmatched[char] -= 1
        end -= 1
    return url[:end]


_DOUBLE_QUOTE = re.compile(r'"[^"\n]*"|“[^“”\n]*”')
_LETTER_RUN = re.compile(r"[^\W\d_]{2,}")


def _spans_of(
    pattern: re.Pattern[str], text: str, excluded: np.ndarray | None = None
) -> tuple[list[int], list[int]]:
    starts, stops = [], []
    for match in pattern.finditer(text):
        if excluded is None or not excluded[match.start()]:
            starts.append(match.start())
            stops.append(match.end())
    return starts, stops


def _word_feature(name: str, length: int, starts: list[int], stops: list[int], description: str) -> Feature:
    """A span feature whose span is over once the next character is not part of it."""
    values = span_mask(length, starts, stops)
    targets = mask_at(length, [stop - 1 for stop in stops if stop < length])
    return Feature(name, "binary", values, targets, description)


def tweet_features(text: str) -> dict[str, Feature]:
    """Label tweets (one per line): inside_hashtag, inside_mention, inside_url, inside_quote, caps_word, position_in_tweet."""
    length = len(text)
    code_points = code_points_of(text)

    url_starts, url_stops = [], []
    for match in _URL.finditer(text):
        url = _url_without_trailing_punctuation(match.group())
        if len(url) > len(match.group("prefix")):
            url_starts.append(match.start())
            url_stops.append(match.start() + len(url))
    inside_url = span_mask(length, url_starts, url_stops)

    quote_starts, quote_stops = _spans_of(_DOUBLE_QUOTE, text)
    quote_closers = [stop - 1 for stop in quote_stops]  # the closing quote is already outside
    caps_starts, caps_stops = [], []
    for match in _LETTER_RUN.finditer(text):
        if match.group().isupper():
            caps_starts.append(match.start())
            caps_stops.append(match.end())
    caps_word = span_mask(length, caps_starts, caps_stops)
    position_in_tweet = chars_into_line(code_points)

    return {
        "inside_hashtag": _word_feature(
            "inside_hashtag",
            length,
            *_spans_of(_HASHTAG, text, inside_url),
            "the # and word characters of a #hashtag",
        ),
        "inside_mention": _word_feature(
            "inside_mention", length, *_spans_of(_MENTION, text, inside_url), "the @ and name of an @mention"
        ),
        "inside_url": Feature(
            "inside_url",
            "binary",
            inside_url,
            mask_at(length, [stop - 1 for stop in url_stops if stop < length]),
            "an http(s)://, www. or host.tld/path address, without punctuation that ends the sentence",
        ),
        "inside_quote": Feature(
            "inside_quote",
            "binary",
            span_mask(length, quote_starts, quote_closers),
            mask_at(length, [closer - 1 for closer in quote_closers]),
            'inside "..." or “...” on one line (opening quote in, closing quote out; apostrophes are not)',
        ),
        "caps_word": Feature(
            "caps_word",
            "binary",
            caps_word,
            caps_word & just_before(caps_word),
            "a letter of an all-capitals word of 2 or more letters (USA, FAKE NEWS)",
        ),
        "position_in_tweet": Feature(
            "position_in_tweet",
            "ordinal",
            position_in_tweet,
            just_before(code_points == ord("\n")),
            "characters of the current tweet read so far (0 on the newline)",
        ),
    }

