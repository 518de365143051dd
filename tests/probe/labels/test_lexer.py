"""Strings and comments of every language the lexer knows, on tricky snippets: expected labels are strings
aligned under the text, '1' for True, '.' for False.
"""

import numpy as np
import pytest
from label_marks import marks, spans_of, target_positions

from charnn.errors import CharnnError
from charnn.probe.labels import code_features, features_for
from charnn.probe.languages import SYNTAXES, language_for_path, resolve_language

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
