"""Which lexical rules label a code text's strings and comments: one Syntax per language, and how a
probe text's language is chosen (the --language flag, else the file name, else a guess from the text).

Kept apart from labels/lexer.py, which compiles the rules, so that building the command line reads this
table without importing numpy or compiling any lexer.
"""

import re
from dataclasses import dataclass

from charnn.errors import CharnnError


@dataclass(frozen=True)
class Syntax:
    """The lexical rules of a language's strings and comments, as far as the labels need them.

    Known limits: SQL's doubled quote ('it''s') reads as two strings; nested block comments (Rust, Haskell)
    close at the first closer; a JavaScript template's ${...} counts as inside the string; a /regex/ is
    told from a division by what comes before it (an operator, an opening bracket, a keyword such as
    return), which a division at a line start or a regex after a closing bracket defeats; Ruby's
    %q(...), %w(...) and %r{...} are code; in YAML (shell rules) an apostrophe in an unquoted value
    opens a string; C++ digit separators (1'000) and raw strings R"(...)" open a one-line string.
    """

    name: str
    line_comments: tuple[str, ...]  # markers that comment out the rest of the line
    block_comments: tuple[tuple[str, str], ...] = ()  # (opener, closer)
    strings: tuple[str, ...] = ('"', "'")  # delimiters
    multiline: frozenset[str] = frozenset()  # delimiters whose strings may run over line ends
    raw: frozenset[str] = frozenset()  # delimiters inside which a backslash escapes nothing
    hash_at_word_start: bool = False  # shell: '#' starts a comment only at a line start or after a blank, ; | & (
    char_literals: bool = False  # Rust: "'" opens a string only as a character literal ('a', '\n'), not a lifetime ('a)
    rust_raw_strings: bool = False  # Rust: r"..." and r#"..."# (any number of #)
    line_start_comments: tuple[tuple[str, str], ...] = ()  # (opener regex at a line start, closer): Perl's POD
    long_brackets: str | None = None  # Lua, CMake: [[...]], [==[...]==] strings; this marker before them: a comment
    heredocs: str = (
        ""  # <<WORD ... a line WORD, the lines between a string: "spaced" (shell: << WORD too), "tight" (Perl, Ruby)
    )
    not_after: str = ""  # characters after which a quote outside a string opens none: shell's \' ; Perl's $' and $"
    regex_literals: str | None = (
        None  # "slash": /.../ where a value may start; "perl": that, m/.../, s/.../.../, qq{...} ...
    )
    extensions: tuple[str, ...] = ()
    file_names: tuple[str, ...] = ()  # whole file names (lower case) that say this language: Makefile ...
    interpreters: tuple[str, ...] = ()  # names on a '#!' line that say this language: sh, bash, perl ...
    description: str = ""


_TRIPLES = ('"""', "'''")
_SHELL_LIKE = dict(hash_at_word_start=True, strings=('"', "'"), multiline=frozenset("\"'"))
SYNTAXES: dict[str, Syntax] = {
    syntax.name: syntax
    for syntax in (
        Syntax(
            "python",
            ("#",),
            strings=(*_TRIPLES, '"', "'"),
            multiline=frozenset(_TRIPLES),
            extensions=(".py", ".pyw", ".pyi", ".pyx", ".pxd"),
            file_names=("sconstruct", "sconscript"),
            interpreters=("python", "python2", "python3", "pypy", "pypy3"),
            description="# comments; '...', \"...\" and triple-quoted strings",
        ),
        Syntax(
            "c",
            ("//",),
            (("/*", "*/"),),
            strings=(*_TRIPLES, '"', "'"),
            multiline=frozenset(_TRIPLES),
            extensions=(
                ".c",
                ".h",
                ".cc",
                ".cpp",
                ".cxx",
                ".c++",
                ".hh",
                ".hpp",
                ".hxx",
                ".h++",
                ".inl",
                ".ipp",
                ".m",
                ".mm",
                ".java",
                ".cs",
                ".kt",
                ".kts",
                ".scala",
                ".sc",
                ".swift",
                ".dart",
                ".groovy",
                ".gradle",
                ".proto",
                ".cu",
                ".cuh",
                ".glsl",
                ".hlsl",
                ".zig",
            ),
            description="C, C++, Java, C#, Kotlin, Swift ...: // and /* */ comments ('#' lines are preprocessor "
            "code); '...', \"...\" and triple-quoted text blocks",
        ),
        Syntax(
            "php",
            ("#", "//"),
            (("/*", "*/"),),
            multiline=frozenset("\"'"),
            extensions=(".php", ".phtml"),
            interpreters=("php",),
            description="PHP: #, // and /* */ comments; '...' and \"...\" strings, which may span lines",
        ),
        Syntax(
            "javascript",
            ("//",),
            (("/*", "*/"),),
            strings=('"', "'", "`"),
            multiline=frozenset("`"),
            regex_literals="slash",
            extensions=(".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx", ".vue", ".svelte"),
            interpreters=("node", "nodejs", "deno", "bun"),
            description="JavaScript and TypeScript: // and /* */ comments; '...', \"...\" and `template` strings; "
            "/regex/ literals",
        ),
        Syntax(
            "go",
            ("//",),
            (("/*", "*/"),),
            strings=('"', "'", "`"),
            multiline=frozenset("`"),
            raw=frozenset("`"),
            extensions=(".go",),
            description="Go: // and /* */ comments; \"...\", 'rune' and `raw` strings",
        ),
        Syntax(
            "rust",
            ("//",),
            (("/*", "*/"),),
            strings=('"',),
            multiline=frozenset('"'),
            char_literals=True,
            rust_raw_strings=True,
            extensions=(".rs",),
            description='Rust: // and /* */ comments; "...", r#"raw"# strings and \'c\' character literals '
            "(a lifetime such as 'a is code)",
        ),
        Syntax(
            "shell",
            ("#",),
            raw=frozenset("'"),
            heredocs="spaced",
            not_after="\\",
            **_SHELL_LIKE,
            extensions=(
                ".sh",
                ".bash",
                ".zsh",
                ".ksh",
                ".r",
                ".tcl",
                ".awk",
                ".yaml",
                ".yml",
                ".toml",
                ".cfg",
                ".conf",
                ".ini",
                ".ps1",
                ".jl",
                ".ex",
                ".exs",
                ".cr",
                ".coffee",
                ".nim",
            ),
            file_names=("dockerfile", "containerfile"),
            interpreters=(
                "sh",
                "bash",
                "dash",
                "ash",
                "zsh",
                "ksh",
                "mksh",
                "awk",
                "gawk",
                "mawk",
                "tclsh",
                "wish",
                "rscript",
                "julia",
                "elixir",
            ),
            description="shell, R, YAML ...: # comments at the start of a word; '...' and \"...\" "
            "strings, which may span lines; <<WORD here-documents; a quote after a backslash is a character",
        ),
        Syntax(
            "make",
            ("#",),
            hash_at_word_start=True,
            extensions=(".mk", ".make"),
            file_names=("makefile", "gnumakefile", "bsdmakefile", "kbuild"),
            interpreters=("make",),
            description="Makefiles: # comments at the start of a word; '...' and \"...\" strings end on their line "
            "(make itself does not quote; its recipes are shell)",
        ),
        Syntax(
            "perl",
            ("#",),
            line_start_comments=((r"=[A-Za-z]\w*", "\n=cut"),),
            regex_literals="perl",
            heredocs="tight",
            not_after="\\$",
            **_SHELL_LIKE,
            extensions=(".pl", ".pm", ".t", ".pod", ".cgi", ".psgi"),
            interpreters=("perl", "perl5"),
            description="Perl: # comments at the start of a word, and =pod ... =cut; '...', \"...\", q{...}, "
            "qq{...}, qw(...) strings and <<WORD here-documents; m/.../, s/.../.../, tr/.../.../ and "
            "/.../ after =~ or ( are regular expressions, neither string nor code",
        ),
        Syntax(
            "ruby",
            ("#",),
            line_start_comments=((r"=begin\b", "\n=end"),),
            regex_literals="slash",
            heredocs="tight",
            **_SHELL_LIKE,
            extensions=(".rb", ".rake", ".gemspec", ".ru", ".podspec"),
            file_names=("rakefile", "gemfile", "vagrantfile"),
            interpreters=("ruby", "jruby"),
            description="Ruby: # comments at the start of a word, and =begin ... =end; '...' and \"...\" strings and "
            "<<WORD here-documents; /regex/ literals",
        ),
        Syntax(
            "cmake",
            ("#",),
            strings=('"',),
            multiline=frozenset('"'),
            long_brackets="#",
            not_after="\\",
            extensions=(".cmake",),
            file_names=("cmakelists.txt",),
            description="CMake: # and #[[ ]] comments; \"...\" and [[...]] arguments ('...' is not a string)",
        ),
        Syntax(
            "sql",
            ("--",),
            (("/*", "*/"),),
            strings=("'", '"'),
            extensions=(".sql", ".hs", ".lhs", ".elm", ".ada", ".adb", ".ads", ".vhd", ".vhdl"),
            description="SQL, Haskell, Ada ...: -- and /* */ comments; '...' and \"...\" strings",
        ),
        Syntax(
            "lua",
            ("--",),
            long_brackets="--",
            extensions=(".lua",),
            interpreters=("lua", "luajit"),
            description="Lua: -- and --[[ ]] comments; '...', \"...\" and [[...]] strings",
        ),
    )
}
LANGUAGES = ("auto", *SYNTAXES)
_EXTENSION_LANGUAGE = {extension: syntax.name for syntax in SYNTAXES.values() for extension in syntax.extensions}
_FILE_NAME_LANGUAGE = {name: syntax.name for syntax in SYNTAXES.values() for name in syntax.file_names}
_INTERPRETER_LANGUAGE = {name: syntax.name for syntax in SYNTAXES.values() for name in syntax.interpreters}


def language_for_path(path: str) -> str | None:
    """The language a file's name says (its extension, or a name such as Makefile), or None."""
    name = str(path).replace("\\", "/").rsplit("/", 1)[-1]
    if name.lower() in _FILE_NAME_LANGUAGE:
        return _FILE_NAME_LANGUAGE[name.lower()]
    dot = name.rfind(".")
    if dot <= 0:
        return None
    return _EXTENSION_LANGUAGE.get(name[dot:].lower())


# '#!/bin/sh', '#!/usr/bin/env -S perl -w', '#! /usr/bin/python3.11': the interpreter's name, without a version
_SHEBANG = re.compile(
    r"^#![ \t]*(?:\S*/)?(?:env[ \t]+(?:-\S+[ \t]+)*)?([A-Za-z][\w+-]*?)[\d.]*(?=[\s]|$)", re.MULTILINE
)
_LINE_ENDING_IN_COLON = re.compile(r":[ \t]*$", re.MULTILINE)
_LINE_ENDING_IN_C_PUNCTUATION = re.compile(r"[;{}][ \t]*$", re.MULTILINE)
_HASH_COMMENT_LINE = re.compile(  # '# note', not a C preprocessor line ('#include', '# define') nor '#!'
    r"^[ \t]*\#(?![ \t]*(?:include(?:_next)?|define|undef|if|ifdef|ifndef|elif|elifdef|elifndef|else|endif|pragma|error"
    r"|warning|line|import|ident|sccs|assert|embed|region|endregion|nullable)\b)(?!!)",
    re.MULTILINE,
)


SHEBANGS_TRUSTED = 3  # without a '#!' first line, this many '#!' lines, most naming one language, name the text's


def language_of_shebangs(text: str) -> str | None:
    """The language the text's '#!' lines name: its first line's (a script), or for a corpus of scripts the language
    most of them name, when there are SHEBANGS_TRUSTED or more and most name it; else None. One '#!' line inside a
    string or a docstring of a Python text does not make it a shell text."""
    counts: dict[str, int] = {}
    lines = 0
    for match in _SHEBANG.finditer(text):
        language = _INTERPRETER_LANGUAGE.get(match.group(1).lower())
        if match.start() == 0:
            return language
        lines += 1
        if language:
            counts[language] = counts.get(language, 0) + 1
    if not counts:
        return None
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] >= SHEBANGS_TRUSTED and counts[best] * 2 > lines else None


def guess_language(text: str) -> str:
    """The language the text's '#!' lines name; else python where more lines end in ':' (def, if, for ...) or are
    '#' comments than end in ';', '{' or '}' (C, Java, JS, whose '#' lines are the preprocessor's); else c."""
    if named := language_of_shebangs(text):
        return named
    python_lines = sum(1 for _ in _LINE_ENDING_IN_COLON.finditer(text)) + sum(
        1 for _ in _HASH_COMMENT_LINE.finditer(text)
    )
    c_lines = sum(1 for _ in _LINE_ENDING_IN_C_PUNCTUATION.finditer(text))
    return "python" if python_lines > c_lines else "c"


def resolve_language(language: str | None, text: str, path: str | None = None) -> str:
    """A language of SYNTAXES: the one given, else the one the file's name says, else a guess from the text."""
    if language not in (None, "", "auto"):
        if language not in SYNTAXES:
            raise CharnnError(f"unknown language {language!r}; known languages: {', '.join(LANGUAGES)}")
        return language
    return (language_for_path(path) if path else None) or guess_language(text)
