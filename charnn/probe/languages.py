"""Which lexical rules label a code text's strings and comments: one Syntax per language, and how a
probe text's language is chosen (the --language flag, else the file name, else a guess from the text).

Kept apart from features.py, which compiles the rules, so that building the command line reads this
table without importing numpy or compiling any lexer.
"""

import re
from dataclasses import dataclass

from charnn.errors import CharnnError


@dataclass(frozen=True)
class Syntax:
    """The lexical rules of a language's strings and comments, as far as the labels need them.

    Known limits: SQL's doubled quote ('it''s') reads as two strings, Lua's [[long strings]] and
    JavaScript's /regex/ literals are code, nested block comments (Rust, Haskell) close at the first
    closer, and a JavaScript template's ${...} counts as inside the string.
    """

    name: str
    line_comments: tuple[str, ...]  # markers that comment out the rest of the line
    block_comments: tuple[tuple[str, str], ...] = ()  # (opener, closer)
    strings: tuple[str, ...] = ('"', "'")  # delimiters
    multiline: frozenset[str] = frozenset()  # delimiters whose strings may run over line ends
    raw: frozenset[str] = frozenset()  # delimiters inside which a backslash escapes nothing
    preprocessor: bool = False  # C: '#include', '#define' ... lines are code, not comments
    hash_at_word_start: bool = False  # shell: '#' starts a comment only at a line start or after a blank, ; | & (
    char_literals: bool = False  # Rust: "'" opens a string only as a character literal ('a', '\n'), not a lifetime ('a)
    rust_raw_strings: bool = False  # Rust: r"..." and r#"..."# (any number of #)
    extensions: tuple[str, ...] = ()
    description: str = ""


_TRIPLES = ('"""', "'''")
SYNTAXES: dict[str, Syntax] = {
    syntax.name: syntax
    for syntax in (
        Syntax(
            "python", ("#",), strings=(*_TRIPLES, '"', "'"), multiline=frozenset(_TRIPLES),
            extensions=(".py", ".pyw", ".pyi", ".pyx", ".pxd"),
            description="# comments; '...', \"...\" and triple-quoted strings",
        ),
        Syntax(
            "c", ("#", "//"), (("/*", "*/"),), strings=(*_TRIPLES, '"', "'"), multiline=frozenset(_TRIPLES),
            preprocessor=True,
            extensions=(".c", ".h", ".cc", ".cpp", ".cxx", ".c++", ".hh", ".hpp", ".hxx", ".h++", ".inl", ".ipp",
                        ".m", ".mm", ".java", ".cs", ".kt", ".kts", ".scala", ".sc", ".swift", ".dart", ".php",
                        ".groovy", ".gradle", ".proto", ".cu", ".cuh", ".glsl", ".hlsl", ".zig"),
            description="C, C++, Java, C#, Kotlin, Swift, PHP ...: // and /* */ comments (and a '#' that does not "
                        "start a preprocessor line); '...', \"...\" and triple-quoted text blocks",
        ),
        Syntax(
            "javascript", ("//",), (("/*", "*/"),), strings=('"', "'", "`"), multiline=frozenset("`"),
            extensions=(".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx", ".vue", ".svelte"),
            description="JavaScript and TypeScript: // and /* */ comments; '...', \"...\" and `template` strings",
        ),
        Syntax(
            "go", ("//",), (("/*", "*/"),), strings=('"', "'", "`"), multiline=frozenset("`"), raw=frozenset("`"),
            extensions=(".go",),
            description="Go: // and /* */ comments; \"...\", 'rune' and `raw` strings",
        ),
        Syntax(
            "rust", ("//",), (("/*", "*/"),), strings=('"',), multiline=frozenset('"'), char_literals=True,
            rust_raw_strings=True, extensions=(".rs",),
            description="Rust: // and /* */ comments; \"...\", r#\"raw\"# strings and 'c' character literals "
                        "(a lifetime such as 'a is code)",
        ),
        Syntax(
            "shell", ("#",), strings=('"', "'"), multiline=frozenset("\"'"), raw=frozenset("'"),
            hash_at_word_start=True,
            extensions=(".sh", ".bash", ".zsh", ".ksh", ".rb", ".pl", ".pm", ".r", ".tcl", ".awk", ".cmake",
                        ".mk", ".make", ".yaml", ".yml", ".toml", ".cfg", ".conf", ".ini", ".ps1", ".jl", ".ex",
                        ".exs", ".cr", ".coffee", ".nim"),
            description="shell, Ruby, Perl, R, YAML, Makefiles ...: # comments at the start of a word; '...' and "
                        "\"...\" strings, which may span lines",
        ),
        Syntax(
            "sql", ("--",), (("/*", "*/"),), strings=("'", '"'),
            extensions=(".sql", ".hs", ".lhs", ".elm", ".ada", ".adb", ".ads", ".vhd", ".vhdl"),
            description="SQL, Haskell, Ada ...: -- and /* */ comments; '...' and \"...\" strings",
        ),
        Syntax(
            "lua", ("--",), (("--[[", "]]"),), strings=('"', "'"), extensions=(".lua",),
            description="Lua: -- and --[[ ]] comments; '...' and \"...\" strings",
        ),
    )
}
LANGUAGES = ("auto", *SYNTAXES)
_EXTENSION_LANGUAGE = {extension: syntax.name for syntax in SYNTAXES.values() for extension in syntax.extensions}
_FILE_NAME_LANGUAGE = {"makefile": "shell", "gnumakefile": "shell", "dockerfile": "shell", "cmakelists.txt": "shell",
                       "rakefile": "shell", "gemfile": "shell", "sconstruct": "python"}


def language_for_path(path: str) -> str | None:
    """The language a file's name says (its extension, or a name such as Makefile), or None."""
    name = str(path).replace("\\", "/").rsplit("/", 1)[-1]
    if name.lower() in _FILE_NAME_LANGUAGE:
        return _FILE_NAME_LANGUAGE[name.lower()]
    dot = name.rfind(".")
    if dot <= 0:
        return None
    return _EXTENSION_LANGUAGE.get(name[dot:].lower())


_LINE_ENDING_IN_COLON = re.compile(r":[ \t]*$", re.MULTILINE)
_LINE_ENDING_IN_C_PUNCTUATION = re.compile(r"[;{}][ \t]*$", re.MULTILINE)


def guess_language(text: str) -> str:
    """python where more lines end in ':' (def, if, for ...) than in ';', '{' or '}' (C, Java, JS); else c."""
    colon_lines = sum(1 for _ in _LINE_ENDING_IN_COLON.finditer(text))
    c_lines = sum(1 for _ in _LINE_ENDING_IN_C_PUNCTUATION.finditer(text))
    return "python" if colon_lines > c_lines else "c"


def resolve_language(language: str | None, text: str, path: str | None = None) -> str:
    """A language of SYNTAXES: the one given, else the one the file's name says, else a guess from the text."""
    if language not in (None, "", "auto"):
        if language not in SYNTAXES:
            raise CharnnError(f"unknown language {language!r}; known languages: {', '.join(LANGUAGES)}")
        return language
    return (language_for_path(path) if path else None) or guess_language(text)
