"""The documentation cannot rot silently. README.md, every docs/*.md and setup/patches/README.md
(those that exist) are read, and what they show is checked against the repository:

- `make X` (in shell code blocks and inline code): X is a Makefile target, and each NAME=value
  given with it names a variable the Makefile uses;
- `tools/<name>.py --flag` and `python -m <module> --flag` (the repository's own modules): the
  flag is in that command's --help output, each command's --help run once (all at once);
- a relative Markdown link: a file or folder inside the repository that git does not ignore
  (one a fresh clone has, or will have once committed).

A command is read within one code span or one line of a code block (comments cut off,
continuation lines joined), up to a shell separator (; && || | and the like).
"""
import functools
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
SHELL_LANGUAGES = {"", "sh", "bash", "shell", "console"}
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)")
CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.DOTALL)
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
TOOL = re.compile(r"(?:\./)?(tools/[\w-]+\.py)")
PYTHON = re.compile(r"(?:.*/)?python[\d.]*")
VARIABLE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")
# make's options whose value is the next word
MAKE_OPTIONS_WITH_VALUE = {"-C", "-f", "-I", "-o", "-W", "--directory", "--file",
                           "--include-dir", "--old-file", "--what-if"}


def documents():
    """The Markdown files of the documentation that exist now."""
    found = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")),
             REPO / "setup" / "patches" / "README.md"]
    return [path for path in found if path.is_file()]


def split_markdown(text):
    """(shell lines, prose) of a Markdown text: the command lines of its fenced shell code
    blocks (continuation lines joined, prompts and comments cut off; of a console block only
    the lines after a `$ ` prompt), and every line outside fenced blocks, as one string.
    Blocks of other languages (Python, logs) count as neither."""
    shell, prose, fence, pending = [], [], None, ""
    for line in text.splitlines():
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = (opening.group(1)[0], len(opening.group(1)), opening.group(2).lower())
            continue
        if fence is not None:
            closing = FENCE.match(line)
            if closing and closing.group(1)[0] == fence[0] and len(closing.group(1)) >= fence[1]:
                fence = None
            elif fence[2] in SHELL_LANGUAGES:
                if fence[2] == "console" and not pending and not re.match(r"\s*\$ ", line):
                    continue   # a console block's output, not a command
                command = re.sub(r"(^|\s)#.*$", "", re.sub(r"^\s*\$ ", "", line))
                if command.rstrip().endswith("\\"):
                    pending += command.rstrip()[:-1] + " "
                else:
                    shell.append(pending + command)
                    pending = ""
            continue
        prose.append(line)
    return shell, "\n".join(prose)


def code_spans(prose):
    """The inline code of prose, each span on one line (a span may cross a line break but not
    a paragraph)."""
    spans = []
    for paragraph in re.split(r"\n\s*\n", prose):
        spans += [" ".join(match.group(2).split()) for match in CODE_SPAN.finditer(paragraph)]
    return spans


def words(snippet):
    """A command line's words, shell separators as words of their own."""
    lexer = shlex.shlex(snippet, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:   # an unbalanced quote: read it as plain words
        return snippet.split()


def is_separator(word):
    return bool(word) and all(char in "();<>|&" for char in word)


def commands(snippet):
    """The simple commands of a snippet: lists of words between separators."""
    found, current = [], []
    for word in words(snippet):
        if is_separator(word):
            found.append(current)
            current = []
        else:
            current.append(word)
    return [command for command in found + [current] if command]


def make_calls(command):
    """(targets, variable names) of a command that runs make (after any NAME=value
    assignments), else None."""
    start = 0
    while start < len(command) and VARIABLE.match(command[start]):
        start += 1
    if start == len(command) or command[start] != "make":
        return None
    targets, variables, skip = [], [], False
    for word in command[start + 1:]:
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = word in MAKE_OPTIONS_WITH_VALUE
        elif VARIABLE.match(word):
            variables.append(VARIABLE.match(word).group(1))
        else:
            targets.append(word)
    return targets, variables


def flags_after(words_after):
    """The --flags among the words after a command, up to `--` (the end of its options)."""
    flags = []
    for word in words_after:
        if word == "--":
            break
        if word.startswith("--") and len(word) > 2:
            flags.append(word.split("=", 1)[0])
    return flags


def is_own_module(module):
    """Whether `module` is one of the repository's (a package folder or a top-level file)."""
    top = module.split(".")[0]
    return (REPO / top).is_dir() or (REPO / f"{top}.py").is_file()


def tool_calls(command):
    """((how to run it, its --flags), ...) of the repository's Python commands in a command:
    tools/<name>.py and python -m <module>."""
    found = []
    for index, word in enumerate(command):
        tool = TOOL.fullmatch(word)
        if tool:
            found.append(((tool.group(1),), flags_after(command[index + 1:])))
        elif (word == "-m" and index > 0 and PYTHON.fullmatch(command[index - 1])
              and index + 1 < len(command) and is_own_module(command[index + 1])):
            found.append((("-m", command[index + 1]), flags_after(command[index + 2:])))
    return found


def snippets(path):
    """Every shell line and inline code span of a document."""
    shell, prose = split_markdown(path.read_text())
    return shell + code_spans(prose)


def links(path):
    """The link targets of a document's prose (not those inside code)."""
    _, prose = split_markdown(path.read_text())
    text = CODE_SPAN.sub("", prose)
    return [match.group(1) for pattern in (INLINE_LINK, REFERENCE_LINK)
            for match in pattern.finditer(text)]


@functools.cache
def makefile():
    return (REPO / "Makefile").read_text()


def make_targets():
    return set(re.findall(r"^([a-z][a-z0-9_.-]*)\s*:(?!=)", makefile(), re.MULTILINE))


def make_variables():
    """Every variable the Makefile defines or reads."""
    text = makefile()
    return (set(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)\s*[?:+]?=", text, re.MULTILINE))
            | set(re.findall(r"\$\((?:[a-z]+ )?([A-Za-z_][A-Za-z0-9_]*)", text)))


def command_exists(call):
    """Whether a tool's file, or a module of the repository, is there."""
    if call[0] != "-m":
        return (REPO / call[0]).is_file()
    path = REPO.joinpath(*call[1].split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def run_all_helps(calls):
    """{call: (exit status, output)} of `call --help` for every call, run at the same time."""
    env = dict(os.environ, PYTHONPATH=str(REPO), GLOG_minloglevel="2")
    running = {call: subprocess.Popen([sys.executable, *call, "--help"], cwd=REPO, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True)
               for call in calls}
    helps = {}
    for call, process in running.items():
        output, _ = process.communicate(timeout=120)
        helps[call] = (process.returncode, output)
    return helps


DOCUMENTS = documents()
IDS = [str(path.relative_to(REPO)) for path in DOCUMENTS]


def test_the_documentation_is_found():
    assert REPO / "README.md" in DOCUMENTS


@pytest.mark.parametrize("path", DOCUMENTS, ids=IDS)
def test_make_commands_name_targets_and_variables_of_the_makefile(path):
    targets, variables = make_targets(), make_variables()
    wrong = []
    for snippet in snippets(path):
        for command in commands(snippet):
            call = make_calls(command)
            if call is None:
                continue
            wrong += [f"{snippet!r}: no target {target!r}" for target in call[0]
                      if target not in targets]
            wrong += [f"{snippet!r}: no variable {name}" for name in call[1]
                      if name not in variables]
    assert not wrong, f"{path.name} shows make commands the Makefile lacks:\n" + "\n".join(wrong)


@pytest.fixture(scope="module")
def helps():
    """The --help output of every command the documents show with flags."""
    calls = {call for path in DOCUMENTS for snippet in snippets(path)
             for command in commands(snippet) for call, flags in tool_calls(command)
             if flags and command_exists(call)}
    return run_all_helps(calls)


@pytest.mark.parametrize("path", DOCUMENTS, ids=IDS)
def test_commands_exist_and_have_the_flags_shown(path, helps):
    wrong = []
    for snippet in snippets(path):
        for command in commands(snippet):
            for call, flags in tool_calls(command):
                shown = " ".join(call)
                if not command_exists(call):
                    wrong.append(f"{snippet!r}: no {shown} in the repository")
                    continue
                if not flags:
                    continue
                status, output = helps[call]
                if status != 0:
                    wrong.append(f"{snippet!r}: `{shown} --help` failed: {output[-300:]}")
                    continue
                wrong += [f"{snippet!r}: {shown} has no {flag}" for flag in flags
                          if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", output)]
    assert not wrong, (f"{path.name} shows commands or flags the repository lacks:\n"
                       + "\n".join(wrong))


def ignored_by_git(paths):
    """Those of `paths` that git ignores (none where git cannot tell: not a checkout)."""
    try:
        done = subprocess.run(["git", "check-ignore", "--stdin"], cwd=REPO, text=True,
                              input="\n".join(str(path) for path in paths),
                              capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return {Path(line) for line in done.stdout.splitlines()} if done.returncode in (0, 1) else set()


@pytest.mark.parametrize("path", DOCUMENTS, ids=IDS)
def test_relative_links_lead_to_files_of_the_repository(path):
    wrong, found = [], {}
    for target in links(path):
        if target.startswith("#") or URL_SCHEME.match(target):
            continue
        relative = unquote(target.split("#", 1)[0].split("?", 1)[0])
        place = (REPO / relative.lstrip("/") if relative.startswith("/")
                 else path.parent / relative).resolve()
        if not place.is_relative_to(REPO):
            wrong.append(f"{target}: outside the repository")
        elif not place.exists():
            wrong.append(f"{target}: no such file")
        else:
            found[place] = target
    wrong += [f"{found[place]}: ignored by git (not in a clone)"
              for place in ignored_by_git(found)]
    assert not wrong, f"{path.name} has dead links:\n" + "\n".join(wrong)
