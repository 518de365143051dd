"""Tweet labels: URLs, mentions, hashtags, quotes, caps, positions, proper nouns, be after an auxiliary."""

from label_marks import marks, spans_of, target_positions

from charnn.probe.labels import tweet_features

# ---------------------------------------------------------------- tweets


def test_url_ends_before_sentence_punctuation():
    text = "see http://x.co/abc. (www.a.org/b), ok\n"
    url = tweet_features(text)["inside_url"]
    assert marks(url.values) == "....111111111111111...11111111111......"
    assert [text[i + 1] for i in target_positions(url)] == [".", ")"]


def test_url_keeps_a_closing_parenthesis_that_matches_one_inside_it():
    text = "see https://en.wikipedia.org/wiki/Mercury_(planet). (x.com/a_(b)) [y.org/c[1]]. z.com/d)\n"
    url = tweet_features(text)["inside_url"]
    spans = [text[start:stop] for start, stop in zip(*spans_of(url.values))]
    assert spans == ["https://en.wikipedia.org/wiki/Mercury_(planet)", "x.com/a_(b)", "y.org/c[1]", "z.com/d"]


def test_bare_hosts_with_a_path_are_urls_but_abbreviations_and_emails_are_not():
    text = "pic.twitter.com/AbC1 and bit.ly/x! U.S./Mexico 1.5/10 a@b.com/x e.g./i.e. file.py/x\n"
    url = tweet_features(text)["inside_url"]
    spans = [text[start:stop] for start, stop in zip(*spans_of(url.values))]
    assert spans == ["pic.twitter.com/AbC1", "bit.ly/x"]


def test_mention_with_trailing_colon_and_email_is_not_a_mention():
    text = "RT @user_1: mail bob@x.com .@CNN\n"
    mention = tweet_features(text)["inside_mention"]
    assert marks(mention.values) == "...1111111" + "." * 18 + "1111."
    assert [text[i + 1] for i in target_positions(mention)] == [":", "\n"]


def test_unicode_hashtags_and_not_numbers_or_entities():
    text = "#café #東京2020 #1 I&#39;m #MAGA!"
    hashtag = tweet_features(text)["inside_hashtag"]
    assert marks(hashtag.values) == "11111." + "1111111" + "." * 12 + "11111."
    assert [text[i + 1] for i in target_positions(hashtag)] == [" ", " ", "!"]


def test_apostrophes_are_not_quotes_but_straight_and_curly_quotes_are():
    text = "I don't say \"it's ok\" or “no”.\nit's\n"
    quote = tweet_features(text)["inside_quote"]
    assert marks(quote.values) == "............11111111.....111.." + "......"
    assert [text[i + 1] for i in target_positions(quote)] == ['"', "”"]


def test_caps_words_and_their_targets():
    text = "FAKE NEWS in the USA's I A.\n"
    caps = tweet_features(text)["caps_word"]
    assert marks(caps.values) == "1111.1111" + "." * 8 + "111" + "." * 8
    assert target_positions(caps) == [0, 1, 2, 5, 6, 7, 17, 18]  # the next letter is in the same word


def test_position_in_tweet_resets_per_line():
    text = "ab\nc\n"
    position = tweet_features(text)["position_in_tweet"]
    assert position.values.tolist() == [1, 2, 0, 1, 0]
    assert target_positions(position) == [1, 3]


def test_hashtag_inside_a_url_is_part_of_the_url_only():
    features = tweet_features("http://a.com/#top @x")
    assert not features["inside_hashtag"].values.any()
    assert features["inside_url"].values[:16].all()


def test_position_in_entity_counts_inside_hashtags_mentions_and_urls_only():
    text = "hi #ab @cd http://x.co/e ok\n"
    position = tweet_features(text)["position_in_entity"]
    defined = position.defined_mask
    assert marks(defined) == "...111.111." + "1" * 13 + "...."
    assert position.values[defined].tolist() == [1, 2, 3, 1, 2, 3, *range(1, 14)]
    assert [text[i + 1] for i in target_positions(position)] == [" ", " ", " "]


def proper_nouns(text: str) -> list[str]:
    starts, stops = spans_of(tweet_features(text)["proper_noun"].values)
    return [text[a:b] for a, b in zip(starts, stops)]


def test_proper_noun_skips_sentence_starts_and_what_only_looks_like_a_name():
    assert proper_nouns("Great day with Mike Pence! Then home. Why? Because\n") == ["Mike", "Pence"]
    assert proper_nouns("RT @jack: Thanks to Congress\n") == ["Congress"]  # after "@x:" a sentence starts
    assert proper_nouns("we love McDonald's and my iPhone, FAKE NEWS CNN\n") == ["McDonald's"]
    assert proper_nouns('so I said "Crooked Hillary" and I\'m done, I will\n') == ["Hillary"]
    assert proper_nouns("met Mr. Smith of the U.S. Senate today… Amazing\n") == ["Smith", "Senate"]
    assert proper_nouns("go #MakeAmericaGreat @Trump http://a.com/Obama (New) York\n") == ["York"]
    assert proper_nouns("ok\nObama said no\n") == []  # every line is a tweet: its first word starts it


def test_proper_noun_targets_are_each_names_last_letter():
    text = "hi Bob and Al.\n"
    noun = tweet_features(text)["proper_noun"]
    assert marks(noun.values) == "...111.....11.." and target_positions(noun) == [5, 12]


def aux_bes(text: str) -> list[str]:
    starts, stops = spans_of(tweet_features(text)["aux_be"].values)
    return [text[a - 4 : b] for a, b in zip(starts, stops)]


def test_aux_be_follows_an_auxiliary_with_up_to_two_adverbs_between():
    text = (
        "It will be great. I've always been right. He has never been. Won't be long. You'll be fine, they'd "
        "be there, I want to be, it should not ever be, we must not just also be, Let it be. beer will bend\n"
    )
    assert aux_bes(text) == ["ill be", "ays been", "ver been", "n't be", "'ll be", "y'd be", " to be", "ver be"]
    feature = tweet_features(text)["aux_be"]
    assert all(text[i] == "b" and text[i + 1] == "e" for i in target_positions(feature))
    assert aux_bes("WILL BE there, can't be, could be\n") == ["ILL BE", "n't be", "uld be"]
