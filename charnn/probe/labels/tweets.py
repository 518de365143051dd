"""Tweet labels: inside a #hashtag, an @mention, a URL or a quote; the position inside one of the first three; a word
in capitals; a proper noun; be after an auxiliary; the position in the tweet."""

import re

import numpy as np

from charnn.probe.labels.base import Feature, chars_into_line, code_points_of, just_before, mask_at, span_mask

_WORD_CHAR = r"[\w\u0300-\u036f]"  # word characters and combining accents (decomposed é)
_HASHTAG = re.compile(rf"(?<![\w&])#(?=\d*[^\W\d]){_WORD_CHAR}+")  # not '&#39;', not '#1'
_MENTION = re.compile(r"(?<![\w@])@[A-Za-z0-9_]+")  # not e-mail addresses
# a scheme, www., or a bare host with a common top-level domain and a path (pic.twitter.com/x, bit.ly/y)
_DOMAINS = "com|org|net|gov|edu|mil|int|info|biz|io|co|ly|gl|me|tv|us|uk|ca|au|de|fr|news"
_BARE_HOST = rf"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9-]+)*\.(?:{_DOMAINS})/"
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


# proper_noun: a capitalised word (upper-case letter, lower-case letter, more letters or an inner apostrophe:
# McDonald's)
_WORD = re.compile(r"(?<![\w'’])[^\W\d_](?:[^\W\d_]|['’](?=[^\W\d_]))*(?![\w'’])")
_NOT_NAMES = frozenset({"I", "I'm", "I’m"})
# where what follows starts a sentence or is not read as a name: after . ! ? … (not after an initial such as "U.S."
# or a title such as "Mr."), after a colon, after an opening quote or bracket, at the start of the tweet
_SENTENCE_END = re.compile(r"(?:[.!?…]|:)[\"”’')\]]*[ \t]+$|[\"“‘'(\[][ \t]*$|^[ \t]*$")
_TITLES = (
    "Mr",
    "Mrs",
    "Ms",
    "Dr",
    "St",
    "Sen",
    "Gov",
    "Rep",
    "Gen",
    "Jr",
    "Sr",
    "Lt",
    "Col",
    "Sgt",
    "Prof",
    "Pres",
    "Mt",
    "Ft",
    "vs",
)
_TITLE_OR_INITIAL = re.compile(rf"(?:^|[\s(\"“])(?:{'|'.join(_TITLES)}|[A-Z](?:\.[A-Z])*)\.[ \t]+$")
# aux_be: be, been or being after an auxiliary or a modal, with up to two adverbs between
_AUXILIARY = (
    r"(?:(?:will|would|shall|should|can|could|may|might|must|have|has|had)(?:n['’]t)?|won['’]t|"
    r"can['’]t|cannot|shan['’]t|\w+['’](?:ve|ll|d)|to)"
)
_ADVERB = r"(?:not|never|always|just|also|already|ever|still|n['’]t)"
_AUX_BE = re.compile(
    rf"(?<![\w'’]){_AUXILIARY}[ \t]+(?:{_ADVERB}[ \t]+){{0,2}}(?P<be>be|been|being)(?![\w'’])", re.IGNORECASE
)
_DOUBLE_QUOTE = re.compile(r'"[^"\n]*"|“[^“”\n]*”')
_LETTER_RUN = re.compile(r"[^\W\d_]{2,}")


def _spans_of(pattern: re.Pattern[str], text: str, excluded: np.ndarray | None = None) -> tuple[list[int], list[int]]:
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


def _proper_nouns(text: str, entities: np.ndarray) -> tuple[list[int], list[int]]:
    """Spans of the capitalised words that are not at a sentence's or tweet's start, not after a colon or an opening
    quote, not I or I'm, and not inside a hashtag, mention or URL."""
    starts, stops = [], []
    for match in _WORD.finditer(text):
        word, start = match.group(), match.start()
        if len(word) < 2 or not (word[0].isupper() and word[1].islower()) or word in _NOT_NAMES or entities[start]:
            continue
        if word in _TITLES and text.startswith(".", match.end()):
            continue  # Mr. Smith: the name is Smith
        line_start = text.rfind("\n", 0, start) + 1
        before = text[max(line_start, start - 40) : start]
        if not before.strip() and not text[line_start:start].strip():
            continue  # the tweet's first word
        if _SENTENCE_END.search(before) and not _TITLE_OR_INITIAL.search(before):
            continue
        starts.append(start)
        stops.append(match.end())
    return starts, stops


def _aux_be(text: str, entities: np.ndarray) -> tuple[list[int], list[int]]:
    """Spans of be, been, being after an auxiliary or modal (up to two adverbs between), outside hashtags, mentions,
    URLs."""
    starts, stops = [], []
    for match in _AUX_BE.finditer(text):
        if not entities[match.start()] and not entities[match.start("be")]:
            starts.append(match.start("be"))
            stops.append(match.end("be"))
    return starts, stops


def _position_in_entity(length: int, starts: list[int], stops: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Characters read since each span's start (1 on its first character), and where a span is (the rest undefined)."""
    position = np.zeros(length, dtype=np.int64)
    for start, stop in zip(starts, stops):
        position[start:stop] = np.arange(1, stop - start + 1)
    return position, span_mask(length, starts, stops)


def tweet_features(text: str) -> dict[str, Feature]:
    """Label tweets (one per line): inside_hashtag, inside_mention, inside_url, inside_quote, position_in_entity,
    caps_word, proper_noun, aux_be, position_in_tweet."""
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
    hashtags = _spans_of(_HASHTAG, text, inside_url)
    mentions = _spans_of(_MENTION, text, inside_url)
    entity_spans = sorted(zip(url_starts + hashtags[0] + mentions[0], url_stops + hashtags[1] + mentions[1]))
    entity_starts, entity_stops = [start for start, _ in entity_spans], [stop for _, stop in entity_spans]
    position_in_entity, inside_entity = _position_in_entity(length, entity_starts, entity_stops)
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
            *hashtags,
            "the # and word characters of a #hashtag",
        ),
        "inside_mention": _word_feature("inside_mention", length, *mentions, "the @ and name of an @mention"),
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
        "position_in_entity": Feature(
            "position_in_entity",
            "ordinal",
            position_in_entity,
            mask_at(length, [stop - 1 for stop in entity_stops if stop < length]),
            "characters read since the start of the current #hashtag, @mention or URL (1 on its # or @ or first "
            "letter); undefined outside them",
            defined=inside_entity,
        ),
        "caps_word": Feature(
            "caps_word",
            "binary",
            caps_word,
            caps_word & just_before(caps_word),
            "a letter of an all-capitals word of 2 or more letters (USA, FAKE NEWS)",
        ),
        "proper_noun": _word_feature(
            "proper_noun",
            length,
            *_proper_nouns(text, inside_entity),
            "a heuristic, not a parser: the letters (and inner apostrophes) of a capitalised word, an upper-case "
            "letter "
            "then a lower-case one (Trump, McDonald's; not iPhone, not USA), that is not the tweet's first word, "
            "not after . ! ? … (unless after an initial or a title such as U.S. or Mr.), a colon, an opening quote "
            "or bracket, is not I or I'm or a title (Mr., Dr., Sen. ...), and is not in a hashtag, mention or URL",
        ),
        "aux_be": Feature(
            "aux_be",
            "binary",
            span_mask(length, *(aux_be := _aux_be(text, inside_entity))),
            mask_at(length, aux_be[0]),  # the b: what it drives is the e after it
            "the letters of be, been or being after an auxiliary or modal (will, would, shall, should, can, could, "
            "may, "
            "might, must, have, has, had, 've, 'll, 'd, to; their n't forms), with up to two of not, never, always, "
            "just, also, already, ever, still, n't between: will be, I've always been, has never been",
        ),
        "position_in_tweet": Feature(
            "position_in_tweet",
            "ordinal",
            position_in_tweet,
            just_before(code_points == ord("\n")),
            "characters of the current tweet read so far (0 on the newline)",
        ),
    }
