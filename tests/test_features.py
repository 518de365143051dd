"""Labels from raw characters: exact labels on tricky snippets, sanity on real code, no crash on any str.

Expected binary labels are written as strings aligned under the text: '1' for True, '.' for False.
"""

import importlib
import inspect
import json.decoder

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charnn.errors import CharnnError
from charnn.probe.labels import FEATURE_SETS, Feature, code_features, features_for, task_features, tweet_features
from charnn.probe.languages import SYNTAXES, language_for_path, resolve_language


def marks(mask: np.ndarray) -> str:
    return "".join("1" if value else "." for value in mask)


def spans_of(mask: np.ndarray) -> tuple[list[int], list[int]]:
    """Starts and stops of the runs of True in mask."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()


def target_positions(feature: Feature) -> list[int]:
    return np.flatnonzero(feature.targets).tolist()


# ---------------------------------------------------------------- strings


def test_escaped_double_quote_stays_inside_the_string():
    text = 's = "a\\"b";'  # s = "a\"b";
    string = code_features(text)["inside_string"]
    assert marks(string.values) == "....11111.."
    assert target_positions(string) == [text.index('b";')]  # the char before the closing quote


def test_escaped_backslash_then_closing_quote():
    text = "c = '\\\\';"  # c = '\\';
    assert marks(code_features(text)["inside_string"].values) == "....111.."


def test_c_char_literal_of_an_apostrophe():
    text = "c = '\\'';\nd = '\"';"  # c = '\''; then d = '"'; (a double quote in a char literal)
    string = code_features(text)["inside_string"]
    assert marks(string.values) == "....111..." + "....11.."
    assert [text[i + 1] for i in target_positions(string)] == ["'", "'"]


def test_python_prefix_letter_is_outside_the_string():
    text = "x = f'{a}' + r\"\\d\""
    assert marks(code_features(text)["inside_string"].values) == ".....1111.....111."


def test_quotes_inside_a_comment_are_not_strings():
    text = '# it\'s "x"\ny = 1\n'
    features = code_features(text)
    assert not features["inside_string"].values.any()
    assert marks(features["inside_comment"].values) == "1111111111." + "......"
    assert target_positions(features["inside_comment"]) == [9]  # next char is the newline ending it


def test_hash_and_slashes_inside_a_string_are_not_comments():
    text = 's = "a # b // c";  # real\n'
    features = code_features(text, language="python")
    assert marks(features["inside_string"].values) == "...." + "1" * 11 + "." * 11
    assert marks(features["inside_comment"].values) == "." * 19 + "111111."


def test_triple_quoted_string_spans_lines_and_holds_quotes():
    text = 'def f():\n    """It\'s "x"\n    y"""\n    return 1\n'
    features = code_features(text)
    opening, closing = text.index('"""'), text.rindex('"""')
    expected = np.zeros(len(text), dtype=bool)
    expected[opening : closing + 2] = True  # the last quote of the closing """ completes the string
    assert marks(features["inside_string"].values) == marks(expected)
    assert target_positions(features["inside_string"]) == [closing + 1]
    assert not features["inside_comment"].values.any()


def test_unterminated_string_recovers_on_the_next_line():
    text = "s = \"abc\nt = 'd';\n"
    string = code_features(text)["inside_string"]
    assert marks(string.values) == "....1111." + "....11..."
    assert [text[i + 1] for i in target_positions(string)] == ["'"]  # no target for the unclosed one


# ---------------------------------------------------------------- comments


def test_c_block_comment_with_a_string_inside_spans_lines():
    text = 'a; /* "x"\n */ b;'
    features = code_features(text)
    assert marks(features["inside_comment"].values) == "...1111111" + "11...."
    assert not features["inside_string"].values.any()
    assert target_positions(features["inside_comment"]) == [text.index("*/")]  # the '*' before the '/'


def test_c_preprocessor_lines_and_other_hashes_are_code_but_line_comments_on_them_are_comments():
    text = "#include <x.h>\n#define STR(x) #x // str\n#include_next <y.h>\n\tldr x0, [x1, #OFF]\n}\n"
    features = code_features(text, language="c")
    comment = features["inside_comment"].values
    assert marks(comment) == "." * text.index("// str") + "111111" + "." * (len(text) - text.index("// str") - 6)
    assert features["bracket_depth"].values[text.index("(x)") + 1] == 1
    assert features["bracket_depth"].values[text.index("#OFF]") + 4] == 0  # the asm's '#' does not hide its ']'


def test_php_keeps_hash_comments():
    string, comment = labels_of("<?php $a = 'x'; # it's\n$b = \"y\nz\";\n", "php")
    assert comment.count("1") == len("# it's")
    assert string.count("1") == len("'x") + len('"y\nz')


def test_url_in_c_like_text_and_floor_division_in_python_are_not_comments():
    c_text = "curl http://a.b/c;\nx = 1; // one\n"
    assert marks(code_features(c_text)["inside_comment"].values) == "." * 26 + "111111."
    python_text = "def f(a):\n    if a:\n        return a // 2\n"
    assert not code_features(python_text)["inside_comment"].values.any()


def labels_of(text: str, language: str) -> tuple[str, str]:
    features = code_features(text, language=language)
    return marks(features["inside_string"].values), marks(features["inside_comment"].values)


def test_rust_lifetimes_are_code_and_char_literals_raw_strings_and_attributes_are_lexed():
    text = "fn f<'a>(x: &'a str) { let c = '\\''; let r = r#\"a \"b\"#; } #[derive(Debug)]\n"
    string, comment = labels_of(text, "rust")
    assert not comment.count("1")  # '#[' is an attribute, not a comment
    assert string[: text.index("let c")] == "." * text.index("let c")  # the lifetimes 'a
    char_literal = text.index("'\\''")
    assert string[char_literal : char_literal + 5] == "111.."[:4] + "."  # ' \ ' in, closing ' out
    raw = text.index('r#"')
    assert string[raw : raw + len('r#"a "b"#')] == "1" * 8 + "."  # the inner quote does not close it
    assert string[raw - 1] == "."


def test_rust_strings_span_lines():
    text = 'let s = "one\ntwo"; // c\n'
    string, comment = labels_of(text, "rust")
    assert string == "." * 8 + "1" * 8 + "." * 8  # the closing quote, then "; // c\n"
    assert comment.endswith("1111.")


def test_javascript_template_literal_holds_apostrophes_and_newlines():
    text = "const s = `it's ${x}\nline`; // a 'quote'\nlet y = 'a';\n"
    string, comment = labels_of(text, "javascript")
    opening = text.index("`")
    closing = text.index("`", opening + 1)
    assert string[opening:closing] == "1" * (closing - opening) and string[closing] == "."
    assert comment[text.index("//") : text.index("'quote'") + 7] == "1" * (text.index("'quote'") + 7 - text.index("//"))
    assert string[text.index("'a'") : text.index("'a'") + 3] == "11."
    # read as C, the backtick is code and the apostrophe of "it's" opens a string
    assert labels_of(text, "c")[0][text.index("'s")] == "1"


def test_go_raw_strings_keep_backslashes_and_quotes():
    text = 'x := `a\\` + "b\\"c"\n'  # `a\` is a whole raw string; "b\"c" escapes its quote
    string, _ = labels_of(text, "go")
    assert string == "....." + "111." + "..." + "11111." + "."


def test_shell_hash_comments_only_at_the_start_of_a_word():
    text = "echo $# ${#a} x#y # it's\nv='a\nb' w=\"\\\"\"\n"
    string, comment = labels_of(text, "shell")
    hash_comment = text.index("# it")
    assert comment[:hash_comment] == "." * hash_comment
    assert comment[hash_comment : text.index("\n")] == "1" * (text.index("\n") - hash_comment)
    single = text.index("'a")
    assert string[single : single + 5] == "1111."  # single-quoted strings span lines
    double = text.index('"\\"')
    assert string[double : double + 4] == "111."  # "\"" in double quotes


def test_sql_and_lua_dash_dash_comments():
    string, comment = labels_of("SELECT 'a' -- it's\n/* b */ x;\n", "sql")
    assert string == ".......11." + "." * 20
    assert comment == "." * 11 + "1111111." + "111111." + "...."
    string, comment = labels_of("--[[ a\n]] x = 'b' -- c\n", "lua")
    assert comment == "1" * 8 + "." + "." * 9 + "1111."
    assert string.count("1") == 2


def test_javascript_regex_literals_hide_quotes_slashes_and_brackets_but_divisions_stay_code():
    text = (
        "const re = /[`'(]/g;\nif (/^https?:\\/\\//.test(u)) { go(u); }\n"
        "x = a / b / c; y = (d) / 2; // 'q'\nf(/[/*]/, 2)\n"
    )
    features = code_features(text, language="javascript")
    string, comment = marks(features["inside_string"].values), marks(features["inside_comment"].values)
    assert string.count("1") == 0  # a regex literal is neither a string nor code
    assert comment.count("1") == len("// 'q'")
    assert features["bracket_depth"].values[text.index("{ go")] == 1 and features["bracket_depth"].values[-1] == 0
    assert features["bracket_depth"].values[text.index("g;")] == 0  # the regex's ( is no bracket


def test_perl_pod_quote_like_operators_and_regexes():
    text = (
        "=head1 NOTES\n\nIt doesn't work.\n\n=cut\n\nsub f { return 1; }\n"
        "$it =~ m/([^':]+)/s; $y =~ s{a'}{b}g; $z =~ tr/a-z'/A-Z/;\n"
        "my @w = qw(a (b) 'c); my $q = q{it's}; if ($l =~ /it's/) { print 1; } my $n = $#a; # done\n"
    )
    string, comment = labels_of(text, "perl")
    assert comment[: text.index("=cut") + 3] == "1" * (text.index("=cut") + 3)  # POD, up to the last letter of =cut
    assert comment[text.index("sub") : text.index("# done")] == "." * (text.index("# done") - text.index("sub"))
    quoted = [text[start:stop] for start, stop in zip(*spans_of(np.array([mark == "1" for mark in string])))]
    assert quoted == [
        "(a (b) 'c",
        "{it's",
    ]  # qw() and q{} are strings, with nested brackets; m//, s{}{}, tr///, /.../ are not
    assert code_features(text, language="perl")["bracket_depth"].values[-1] == 0


def test_perl_regex_flags_escapes_and_special_variables_are_not_operators_or_quotes():
    text = (
        'if (grep /^\\$pw_/s, @EXPORT_OK) { x(); }\nmy @l = split(/^/m, $list);\n$x =~ m/a/s  # like "B"\n'
        "my($a,$b) = /^(.*?\\S)\\s+(\\S+)/;\nmap { /^\\s+(.*\\S)/ } @x;\n$v = $' . $\";\nf(s, e, ALPHA);\n"
    )
    string, comment = labels_of(text, "perl")
    assert string.count("1") == 0  # $' and $" are variables; the /s and /m flags open no s/// or m//
    assert comment.count("1") == len('# like "B"')
    depth = code_features(text, language="perl")["bracket_depth"].values
    assert depth[text.index("{ x")] == 1 and depth[text.index("\nmap")] == 0 and depth[-1] == 0


def test_here_documents_are_strings_until_their_terminator_line():
    text = "cat <<EOF > 'f'\nit won't\nEOF\necho $((1 << 2)) 'ok'\ncat <<-\"X\"\n\tit's\n\tX\ncat <<NONE\nit's\n"
    string, _ = labels_of(text, "shell")
    body = text.index("\nit won't")
    assert string[text.index("'f'") : text.index("'f'") + 3] == "11."  # the rest of the opening line is lexed first
    assert string[body : text.index("EOF\necho") + 3] == "1" * (text.index("EOF\necho") + 2 - body) + "."
    assert string[text.index("'ok'") : text.index("'ok'") + 4] == "111."  # 1 << 2 is a shift
    assert string[text.index("\tX") : text.index("\tX") + 2] == "1."  # <<- allows an indented terminator
    # no terminator line: <<NONE is code, and the apostrophe after it opens a (shell, multi-line) string
    assert string[text.index("NONE") : text.index("it's\n", text.index("NONE"))] == "." * 5
    ruby = "puts <<~EOS\r\n  it's\r\n  EOS\r\nx = 'a'\r\nresult << line\nfoo\nline\n"
    string, _ = labels_of(ruby, "ruby")
    assert string.count("1") == len("\n  it's\r\n  EO") + len("'a")  # Ruby's << with a blank appends
    # make does not quote: a Makefile's strings end on their line ('\'' balances nothing there)
    make = "SQ = $(subst ','\\'',$(P))\nall:\n\techo \"it's\" # c\n"
    string, comment = labels_of(make, "make")
    assert string[make.index("\n")] == "." and string[make.index("\"it's") : make.index(" # c")] == "11111."
    assert comment.count("1") == len("# c")


def test_shell_quote_after_a_backslash_is_a_character():
    text = "grep FSTYPE=\\\"ext\\\" | wc -l\nx='it'\\''s'\n"
    string, _ = labels_of(text, "shell")
    assert string == "." * text.index("\n") + "." + "..111...11.."


def test_cmake_bracket_comments_and_lua_long_strings():
    text = "#[==[.rst:\nIt's the user's (thing).\n#]==]\nset(X \"a b\") # it's\nmessage([[it's]])\n"
    string, comment = labels_of(text, "cmake")
    closer = text.index("#]==]") + 4
    assert comment[:closer] == "1" * closer and comment[closer] == "."
    assert [text[start:stop] for start, stop in zip(*spans_of(np.array([mark == "1" for mark in string])))] == [
        '"a b',
        "[[it's]",
    ]
    string, comment = labels_of("local s = [[it's\n]] .. f(y)\n--[==[ a\n]] b ]==] x = 'c'\n", "lua")
    assert string.count("1") == len("[[it's\n]") + len("'c")
    assert comment.count("1") == len("--[==[ a\n]] b ]==")


def test_docstrings_and_one_line_strings_are_also_features_of_their_own():
    text = 'def f():\n    """Doc \'x\'."""\n    return "a" + \'b\'\n'
    features = code_features(text)
    assert list(features)[:3] == ["inside_string", "inside_multiline_string", "inside_oneline_string"]
    multi, one = features["inside_multiline_string"], features["inside_oneline_string"]
    doc = text.index('"""')
    assert marks(multi.values[doc : doc + 15]) == "1" * 13 + ".."  # the last of the three closing quotes is out
    assert not (multi.values & one.values).any()
    assert ((multi.values | one.values) == features["inside_string"].values).all()
    assert [text[i + 1] for i in target_positions(one)] == ['"', "'"]
    assert target_positions(multi) == [doc + 12]
    # one kind only (C without text blocks, Go without raw strings): no split
    assert "inside_oneline_string" not in code_features('x = "a";\n', language="c")
    assert "inside_multiline_string" not in code_features("s := `raw`\n", language="go")


def test_language_from_file_names_and_the_guess_from_the_text():
    assert [
        language_for_path(name) for name in ("a.py", "dir/b.RS", "x.tsx", "Makefile", "m.go", "q.sql", "notes")
    ] == ["python", "rust", "javascript", "make", "go", "sql", None]
    assert [language_for_path(name) for name in ("Lib.pm", "x.rb", "CMakeLists.txt", "a.cmake", "i.php", "m.c")] == [
        "perl",
        "ruby",
        "cmake",
        "cmake",
        "php",
        "c",
    ]
    assert resolve_language("auto", "x = 1;\n", "held_out.py") == "python"  # the name wins over the text
    assert resolve_language(None, "def f(a):\n    return a\n") == "python"
    assert resolve_language(None, "# a note\ny = 1\n") == "python"  # '#' comments, not C's preprocessor lines
    assert resolve_language(None, "#include <a.h>\n#define X 1\nint f(void) {\n\treturn 0;\n}\n") == "c"
    assert resolve_language("go", "anything", "a.py") == "go"
    # a script without an extension: its '#!' line; a corpus of scripts: the interpreter most of them name
    for shebang, language in [
        ("#!/bin/sh", "shell"),
        ("#! /usr/bin/env python3", "python"),
        ("#!/usr/bin/perl -w", "perl"),
        ("#!/usr/bin/env -S node --no-warnings", "javascript"),
        ("#!/usr/bin/ruby2.7", "ruby"),
    ]:
        assert resolve_language(None, f"{shebang}\nif [ $# -eq 0 ]; then x; fi;\n", "bin/script") == language
    scripts = (
        "x=1;\n" + "#!/bin/bash\necho a;\n" * 3 + "#!/usr/bin/perl\nprint 1;\n"
    )  # a corpus of scripts, cut mid-file
    assert resolve_language(None, scripts, "held_out.txt") == "shell"
    # one '#!' line inside a docstring does not make Python shell; nor do C#'s #region lines make C# Python
    python = 'def f(a):\n    """Write:\n#!/bin/sh\nexec x\n"""\n    return a\n' * 2
    assert resolve_language(None, python) == "python"
    assert (
        resolve_language(None, "#region Fields\nprivate int x;\n#endregion\n#include_next <a.h>\nvoid F() {\n}\n")
        == "c"
    )
    with pytest.raises(CharnnError, match="unknown language 'cobol'"):
        resolve_language("cobol", "x")
    with pytest.raises(CharnnError, match="unknown language"):
        features_for("code", "x = 1\n", language="cobol")


def test_every_language_labels_code_like_noise_consistently():
    text = "a = 'b' // c /* d */ # e\n\"f\" `g` -- h --[[ i ]] r#\"j\"# '\\n' 'k\n"
    for language in SYNTAXES:
        features = code_features(text, language=language)
        assert not (features["inside_string"].values & features["inside_comment"].values).any(), language
        assert len(features["inside_string"].values) == len(text)


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


# ---------------------------------------------------------------- real code


def test_real_python_source_has_plausible_labels():
    text = inspect.getsource(json.decoder)
    features = code_features(text)
    string = features["inside_string"]
    assert 0.01 < string.values.mean() < 0.5
    assert 0.005 < features["inside_comment"].values.mean() < 0.3
    assert all(text[i + 1] in "'\"" for i in target_positions(string))
    assert string.targets.sum() > 50
    assert all(text[i + 1] == "\n" for i in target_positions(features["inside_comment"]))
    assert not (string.values & features["inside_comment"].values).any()
    assert features["bracket_depth"].values[-1] == 0  # the whole module balances
    assert features["indent_depth"].values.max() >= 16
    # A docstring line is inside, the code that uses the string scanner is outside.
    assert string.values[text.index("after the end quote")]
    assert not string.values[text.index("chunks = []")]


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


# ---------------------------------------------------------------- any input


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_any_text_gets_labels_of_its_length(text):
    for feature in [*code_features(text).values(), *tweet_features(text).values()]:
        assert feature.values.shape == (len(text),)
        assert feature.targets.shape == (len(text),) and feature.targets.dtype == bool
        assert feature.kind in ("binary", "ordinal")
        assert feature.kind == "ordinal" or feature.values.dtype == bool
        assert feature.defined_mask.shape == (len(text),) and (feature.target_mask <= feature.defined_mask).all()
    code = code_features(text)
    assert (code["block_depth"].values >= 0).all() and (code["indent_remaining"].values >= 0).all()


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="\"'#/*\\\n\t (){}[]ab"))
def test_code_invariants_on_code_like_noise(text):
    features = code_features(text, tab_width=4)
    string, comment = features["inside_string"], features["inside_comment"]
    assert not (string.values & comment.values).any()
    for i in target_positions(string):
        assert text[i + 1] in "'\"" and string.values[i] and not string.values[i + 1]
    assert all(comment.values[i] and not comment.values[i + 1] for i in target_positions(comment))
    assert (features["bracket_depth"].values >= 0).all() and (features["indent_depth"].values >= 0).all()


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="\"'`#/*\\\n\t -[](){}abr"), st.sampled_from(sorted(SYNTAXES)))
def test_every_language_keeps_the_span_invariants(text, language):
    features = code_features(text, language=language)
    string, comment = features["inside_string"], features["inside_comment"]
    assert not (string.values & comment.values).any()
    for i in target_positions(
        string
    ):  # a closed string ends on a quote (or a raw string's '#', a [[long]] string's ']')
        assert text[i + 1] in "'\"`#]" and string.values[i] and not string.values[i + 1]
    assert all(comment.values[i] and not comment.values[i + 1] for i in target_positions(comment))
    assert (features["bracket_depth"].values >= 0).all() and (features["indent_depth"].values >= 0).all()


@settings(max_examples=80, deadline=None)
@given(
    st.text(alphabet="\"'`#/\\\n\t -=~<[](){}qmsyEOF;$"),
    st.sampled_from(["shell", "perl", "ruby", "javascript", "cmake", "lua"]),
)
def test_here_documents_regexes_and_long_brackets_keep_the_span_invariants(text, language):
    features = code_features(text, language=language)
    string, comment = features["inside_string"], features["inside_comment"]
    assert not (string.values & comment.values).any()
    for feature in (string, comment):
        assert all(feature.values[i] and not feature.values[i + 1] for i in target_positions(feature))
    assert (features["bracket_depth"].values >= 0).all()


def test_lone_surrogates_do_not_crash():
    text = "x = '\ud800' # \udfff\n@a\ud83d #b"
    assert code_features(text)["inside_string"].values.sum() == 2
    assert tweet_features(text)["inside_mention"].values.sum() == 2


def test_pathological_text_stays_linear():
    for text in ["#define x\\\n" * 20000, "“" * 200000, '"' * 200001, "http://" + "." * 200000]:
        assert len(code_features(text)["column"].values) == len(tweet_features(text)["caps_word"].values)
    assert len(tweet_features("http://a.com/" + ")" * 100000)["inside_url"].values) == 100013
    for language, text in [
        ("perl", "s{" * 30000),
        ("perl", "=~ /" * 15000),
        ("javascript", "x = /a[/" * 8000),
        ("javascript", ("[" + "(/[" * 160 + "]") * 60),
        ("perl", "y(" * 10000 + "a)" * 10000),
        ("shell", "".join(f"<<A{i}\n" for i in range(10000))),
        ("lua", "[[" * 30000),
    ]:
        assert len(code_features(text, language=language)["column"].values) == len(text)


# ---------------------------------------------------------------- dispatch and tasks


def test_features_for_dispatches_and_rejects_unknown_kinds():
    code_names = {
        "inside_string",
        "inside_comment",
        "indent_depth",
        "block_depth",
        "indent_remaining",
        "bracket_depth",
        "column",
    }
    assert set(features_for("code", "x")) == code_names
    assert set(features_for("tweets", "x")) == set(FEATURE_SETS["tweets"]("x"))
    with pytest.raises(CharnnError, match="unknown feature set 'poems'"):
        features_for("poems", "x")
    with pytest.raises(CharnnError, match="needs a task name"):
        features_for("task", "x")


def tasks_importable() -> bool:
    try:
        importlib.import_module("charnn.tasks")
    except Exception:  # not written yet, or half-written by its author right now
        return False
    return True


needs_tasks = pytest.mark.skipif(not tasks_importable(), reason="charnn.tasks is not importable yet")


@needs_tasks
def test_count_task_features_target_the_bs_and_the_final_newline():
    text = "aaXbb\naX\n"  # the second line breaks the format (no b)
    features = features_for("task", text, task="task:count")
    count = features["count"]
    assert count.kind == "ordinal" and features["phase"].kind == "binary"
    assert count.values.tolist()[:6] == [1, 2, 2, 1, 0, 0]
    assert target_positions(count) == [2, 3, 4]  # before each b and before the newline after the last b
    assert features["phase"].values.tolist()[:6] == [False, False, True, True, True, False]


@needs_tasks
def test_ab_memory_targets_the_answer():
    from charnn.tasks import make_task_text

    text = "BxxYb\n" + make_task_text("ab-memory", num_sequences=50, seed=1)
    ab_state = task_features(text, "ab-memory")["ab_state"]
    assert ab_state.kind == "binary"
    assert ab_state.values[:5].all()
    assert all(text[i] == "Y" and text[i + 1] in "ab" for i in target_positions(ab_state))
    assert ab_state.targets.sum() == 51


def test_regex_and_perl_scans_are_bounded_per_character(monkeypatch):
    """The property that keeps the lexer linear, counted rather than timed: a /regex/ body is matched within a
    window of REGEX_MAX_CHARS, and Perl's delimiter scans read each character a bounded number of times."""
    import charnn.probe.labels.lexer as features_module

    windows = []
    body = features_module._SLASH_BODY

    class CountingBody:
        def match(self, text, pos, endpos):
            windows.append(endpos - pos)
            return body.match(text, pos, endpos)

    monkeypatch.setattr(features_module, "_SLASH_BODY", CountingBody())
    features_module._lexer.cache_clear()
    text = ("[" + "(/[" * 160 + "]") * 20 + "\nx = /it's/;\n"
    assert code_features(text, language="javascript")["inside_string"].values.sum() == 0  # the regex hides the '
    assert windows and max(windows) <= features_module.REGEX_MAX_CHARS + 1

    tokens = 0
    scanner = features_module._repeat_scanner

    def counting_scanner(delimiters):
        pattern = scanner(delimiters)

        class Counting:
            def finditer(self, *args):
                nonlocal tokens
                for token in pattern.finditer(*args):
                    tokens += 1
                    yield token

        return Counting()

    monkeypatch.setattr(features_module, "_repeat_scanner", counting_scanner)
    for text in ["y(" * 3000 + "a)" * 3000, "s{" * 3000, "=~ /" * 3000, "q/" + "s/a/" * 3000, "s{a}{b;\n" * 2000]:
        tokens = 0
        code_features(text, language="perl")
        assert tokens <= 6 * len(text), (text[:10], tokens, len(text))


def test_a_pattern_feature_follows_the_position_convention():
    from charnn.probe.labels.custom import pattern_feature

    text = "x # TODO: y\n# FIXME\n"
    feature = pattern_feature("todo", "TODO|FIXME", text)
    assert "".join("T" if v else "." for v in feature.values) == "....TTTT......TTTTT."
    assert [i for i, t in enumerate(feature.targets) if t] == [7, 18]  # each match's last character
    assert not pattern_feature("none", "ZZZ", text).values.any()


def test_a_label_file_is_read_and_checked(tmp_path):
    import re

    from charnn.probe.labels.custom import read_label_file

    good = tmp_path / "mine.json"
    good.write_text(
        json.dumps(
            {
                "flag": [True, True, False, None, False],
                "level": [0, 1, None, 1, 2],
                "score": [0.5, 0.25, 1.0, None, 2.0],
            }
        )
    )
    features = read_label_file(str(good), 5)
    assert features["flag"].kind == "binary" and features["flag"].defined.tolist() == [True, True, True, False, True]
    assert features["flag"].targets.tolist() == [False, True, False, False, False]  # the last True before a False
    assert features["level"].kind == "ordinal" and features["level"].values.dtype == np.int64
    assert features["score"].values.dtype == np.float64 and features["score"].defined.sum() == 4
    array = tmp_path / "quote.npy"
    np.save(array, np.array([0, 1, -1, 2, 2]))
    ((name, feature),) = read_label_file(str(array), 5).items()
    assert name == "quote" and feature.defined.tolist() == [True, True, False, True, True]
    cases = {
        '{"a": [1, 2]}': "has 2 labels for a probe text of 5 characters",
        '{"a": [1, true, 0, 0, 0]}': "mixes label types",
        '{"a": [1.0, NaN, 0, 0, 0]}': "NaN or infinite labels",
        '{"a": [null, null, null, null, null]}': "has no defined label",
        '{"inside_string": [1, 1, 1, 1, 1]}': "built-in feature's name",
        '{"a": "11111"}': "must map to a list",
        "[1, 2, 3, 4, 5]": "must hold a JSON object",
        '{"a": [1, 2': "is not JSON",
    }
    for content, message in cases.items():
        bad = tmp_path / "bad.json"
        bad.write_text(content)
        with pytest.raises(CharnnError, match=re.escape(message)):
            read_label_file(str(bad), 5)
    np.save(tmp_path / "two.npy", np.zeros((5, 2)))
    with pytest.raises(CharnnError, match="give one label per character"):
        read_label_file(str(tmp_path / "two.npy"), 5)
    np.save(tmp_path / "objects.npy", np.array([{}, {}], dtype=object), allow_pickle=True)
    with pytest.raises(CharnnError, match="without pickles"):
        read_label_file(str(tmp_path / "objects.npy"), 2)
