"""Indentation, brackets, columns, the block depth and the indent still to write, on tricky text."""

from label_marks import marks, target_positions

from charnn.probe.labels import Feature, code_features, tweet_features

# ---------------------------------------------------------------- indentation, brackets, columns


def test_indent_depth_expands_tabs_to_the_tab_width():
    text = "\tx\n  \ty\n    z\n"
    features8 = code_features(text, tab_width=8)["indent_depth"]
    assert features8.values.tolist() == [8, 8, 0, 1, 2, 8, 8, 0, 1, 2, 3, 4, 4, 0]
    features4 = code_features(text, tab_width=4)["indent_depth"]
    assert features4.values.tolist() == [4, 4, 0, 1, 2, 4, 4, 0, 1, 2, 3, 4, 4, 0]
    assert target_positions(features8) == [0, 5, 11]  # the last whitespace before each line's code


def test_indent_targets_include_unindented_lines_but_not_blank_ones():
    text = "a\n  \nb\n"
    indent = code_features(text)["indent_depth"]
    assert indent.values.tolist() == [0, 0, 1, 2, 0, 0, 0]
    assert target_positions(indent) == [4]  # the newline before 'b'; the blank line has no code


def test_bracket_depth_across_lines_ignores_strings_and_clamps_unbalanced_closes():
    text = 'f(a,\n [b])) ")" {x}'
    depth = code_features(text)["bracket_depth"]
    assert depth.values.tolist() == [0, 1, 1, 1, 1, 1, 2, 2, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0]
    assert target_positions(depth) == [7, 8, 9, 17]  # before each closing bracket in code


def test_column_counts_characters_read_on_the_line_and_resets_on_newline():
    text = "ab\n\tcd\n"
    column = code_features(text)["column"]
    assert column.values.tolist() == [1, 2, 0, 1, 2, 3, 0]
    assert target_positions(column) == [1, 5]


def test_carriage_returns_and_empty_text_are_labelled():
    text = 'x = "a"\r\n  y\r\n'
    features = code_features(text)
    assert marks(features["inside_string"].values) == "....11..." + "....."
    assert features["indent_depth"].values.tolist() == [0] * 9 + [1, 2, 2, 2, 0]
    for feature in [*code_features("").values(), *tweet_features("").values()]:
        assert feature.values.shape == (0,) and feature.targets.shape == (0,)


# ---------------------------------------------------------------- block depth and the indent still to write


def levels(feature: Feature) -> str:
    """One character per text character: the label's value, or '-' where it is undefined."""
    return "".join(str(value) if defined else "-" for value, defined in zip(feature.values, feature.defined_mask))


def line_levels(text: str, feature: Feature) -> list[str]:
    """Each line's labels (without its newline), for texts whose values stay below 10."""
    out, position = [], 0
    for line in text.split("\n"):
        out.append(levels(feature)[position : position + len(line)])
        position += len(line) + 1
    return out


def test_block_depth_is_the_statements_level_and_continuation_lines_keep_it():
    text = (
        "def f(a,\n      b):\n    x = [1,\n         2]\n    if x:\n"
        "        y = x + \\\n            1\n    return (y +\n            2)\n"
    )
    block = code_features(text, language="python")["block_depth"]
    assert line_levels(text, block) == [
        "00000000",
        "------000",
        "----1111111",
        "---------11",
        "----11111",
        "--------222222222",
        "------------2",
        "----11111111111",
        "------------11",
        "",
    ]
    assert "step: 4 columns" in block.description
    # its targets are each line's last character (the newline is predicted there), all of them defined
    assert all(text[i + 1] == "\n" for i in target_positions(block)) and (block.targets <= block.defined_mask).all()


def test_a_line_after_an_operator_continues_but_not_after_a_colon_or_an_increment():
    text = "x = a +\n    b\nif y:\n    z\ni++\n    w\n"
    block = code_features(text, language="javascript")["block_depth"]
    assert line_levels(text, block)[:6] == ["0000000", "----0", "00000", "----1", "000", "----1"]


def test_braces_are_blocks_in_c_and_continue_a_statement_in_python():
    c = "int f(int a,\n      int b)\n{\n\tif (a) {\n\t\tg(a,\n\t\t  b);\n\t}\n}\n"
    assert line_levels(c, code_features(c, language="c")["block_depth"]) == [
        "000000000000",
        "------000000",
        "0",
        "-11111111",
        "--2222",
        "----222",
        "-1",
        "0",
        "",
    ]
    py = "d = {\n    'a': 1,\n}\nif d:\n    pass\n"
    assert line_levels(py, code_features(py, language="python")["block_depth"]) == [
        "00000",
        "----0000000",
        "0",
        "00000",
        "----1111",
        "",
    ]


def test_indent_remaining_counts_down_to_the_first_character_of_the_line():
    text = "a\n    b\n\n  c\n"
    remaining = code_features(text, language="python")["indent_remaining"]
    # the newline before a blank line is undefined; the blank line's own newline counts the next line's indent
    assert levels(remaining) == "-4" + "3210" + "-" + "-" + "2" + "10" + "--"
    assert [text[i + 1] for i in target_positions(remaining)] == ["b", "c"]
    assert (remaining.targets <= remaining.defined_mask).all()
    first = code_features("  x\n", language="python")["indent_remaining"]  # the text's first line has no newline before
    assert levels(first) == "10--"


def test_tabs_and_mixed_tabs_and_spaces_expand_to_the_tab_stops():
    text = "a\n\tb\n\t  c(\n\t\t\td)\n  \te\n\t\tf\n"
    features = code_features(text, language="c")
    remaining, block = features["indent_remaining"], features["block_depth"]
    assert remaining.values[1:3].tolist() == [8, 0]  # the newline, then the tab lands on column 8
    assert remaining.values[4:8].tolist() == [10, 2, 1, 0]  # "\t  c": 10 columns
    assert remaining.values[10:14].tolist() == [24, 16, 8, 0]
    assert remaining.values[16:20].tolist() == [8, 7, 6, 0]  # "  \t": two spaces, then a tab to column 8
    # the step is a tab (8): "\t  c(" is level 1, its continuation "\t\t\td)" keeps 1, "  \te" is 8 columns: level 1
    assert line_levels(text, block)[:6] == ["0", "-1", "---11", "---11", "---1", "--2"]


def test_a_text_without_indentation_is_at_level_zero_and_has_nothing_still_to_write():
    text = "a = 1\nb = 2\n\nc = 3\n"
    features = code_features(text, language="python")
    assert set(features["block_depth"].values[features["block_depth"].defined_mask]) == {0}
    assert "no indentation" in features["block_depth"].description
    remaining = features["indent_remaining"]
    assert levels(remaining) == "-----0" + "-----" + "-" + "0" + "-----" + "-"


def test_docstring_lines_are_inside_a_string_and_undefined_for_both():
    text = 'def f():\n    """Doc.\n\n    more\n    """\n    return 1\n'
    features = code_features(text, language="python")
    block, remaining = features["block_depth"], features["indent_remaining"]
    assert line_levels(text, block) == ["00000000", "----1111111", "", "--------", "-------", "----11111111", ""]
    docstring = text.index('"""Doc.')
    inside = slice(text.index("Doc.") + 4, text.index("return") - 5)
    assert not block.defined_mask[inside].any() and not remaining.defined_mask[inside].any()
    assert remaining.defined_mask[docstring - 5 : docstring].all()  # the indent of the docstring's first line
    assert remaining.values[text.index("return") - 5] == 4  # the newline after the closing quotes
    # a block comment's lines continue the comment: they take the level of its first line
    c = "int x;\n\t/*\n\t * a\n\t */\n"
    assert line_levels(c, code_features(c, language="c")["block_depth"])[:4] == ["000000", "-11", "--111", "--11"]
