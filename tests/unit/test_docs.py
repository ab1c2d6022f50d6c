"""The README and docs/ stay true to themselves and to the CLI: every relative link between them
resolves (the file, and the `#anchor` by GitHub's rules), and every `devstack` command they show
(in ```sh blocks and in `devstack ...` code spans) answers `--help`, with each option shown."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import typer.main
from typer.testing import CliRunner

from devstack.cli import app

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
INDEX = DOCS / "README.md"

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
SHELL_FENCES = {"sh", "bash", "shell"}
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$")
# A code span: a run of backticks, then the same run (CommonMark), possibly across lines.
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.MULTILINE)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:
# `devstack` as a command word (also `.venv/bin/devstack`), then what follows it up to what ends a
# shell command: `&`, `;`, a pipe between spaces, a comment, a redirection, the end of the span.
INVOCATION = re.compile(r"(?:^|(?<=[\s(`]))(?:[\w.-]*/)*devstack(?=\s|$)([^&;`\n#<>]*?)(?=\s\|\s|[&;`\n#<>]|$)")


@dataclass(frozen=True)
class Page:
    path: Path
    prose: str  # the text outside fenced code blocks
    shell: tuple[str, ...]  # the lines of ```sh blocks

    @property
    def name(self) -> str:
        return str(self.path.relative_to(REPO))


def read_page(path: Path) -> Page:
    prose, shell, fence, info = [], [], "", ""
    for line in path.read_text(encoding="utf-8").splitlines():
        found = FENCE.match(line)
        if fence:
            if found and found.group(1)[0] == fence[0] and len(found.group(1)) >= len(fence) and not found.group(2).strip():
                fence = ""
            elif info in SHELL_FENCES:
                shell.append(line)
            prose.append("")
        elif found:
            fence, info = found.group(1), (found.group(2).strip().split() or [""])[0]
            prose.append("")
        else:
            prose.append(line)
    return Page(path, "\n".join(prose), tuple(shell))


def pages() -> list[Page]:
    return [read_page(REPO / "README.md")] + [read_page(path) for path in sorted(DOCS.glob("*.md"))]


# -- anchors ------------------------------------------------------------------------------------


def github_slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it (github-slugger): the rendered text lowercased, every
    character but letters, digits, marks, `-`, `_` and spaces dropped, each space a `-`."""
    text = LINK.sub(lambda m: m.group(1), heading)  # a link renders as its text
    text = re.sub(r"<[^>]+>", "", text).lower()  # inline HTML renders as nothing here
    kept = [c for c in text if c in "-_ " or (c.isascii() and c.isalnum())
            or (not c.isascii() and unicodedata.category(c)[0] in "LNM")]
    return "".join(kept).replace(" ", "-")


def anchors(page: Page) -> set[str]:
    """The page's heading anchors; a repeated one gets -1, -2..., as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for line in page.prose.splitlines():
        heading = HEADING.match(line)
        if heading is None:
            continue
        slug = github_slug(heading.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    found |= set(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", page.prose))
    return found


def without_code_spans(text: str) -> str:
    return CODE_SPAN.sub(lambda m: "x" * len(m.group(0).split("\n")[0]) + "\n" * m.group(0).count("\n"), text)


def link_targets(page: Page) -> list[str]:
    text = without_code_spans(page.prose)
    return [m.group(2) for m in LINK.finditer(text)] + REFERENCE.findall(text)


def broken_links(page: Page) -> list[str]:
    """One line for each relative link of `page` whose file or anchor does not exist."""
    problems = []
    for target in link_targets(page):
        if not target or EXTERNAL.match(target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.path.parent / path).resolve()
        if path and not file.exists():
            problems.append(f"{page.name}: link to {target}: {path} does not exist")
            continue
        linked = read_page(file) if path else page
        if anchor and linked.path.suffix == ".md" and anchor not in anchors(linked):
            problems.append(f"{page.name}: link to {target}: no heading of {linked.name} has the anchor #{anchor}")
    return problems


# -- commands -----------------------------------------------------------------------------------


def invocations(page: Page) -> list[str]:
    """What follows `devstack` in each command the page shows: its ```sh lines and its code spans."""
    spans = [m.group(2).replace("\n", " ") for m in CODE_SPAN.finditer(page.prose)]
    shown = []
    for text in [*page.shell, *spans]:
        shown += [m.group(1).replace("\\|", "|").strip() for m in INVOCATION.finditer(text)]
    return shown


def _word(token: str) -> str:
    """A token as typed: `[-p` is `-p`, `SERVICE...]` is `SERVICE`, `--set=X` is `--set`."""
    token = token.strip("[](),.:").removesuffix("...").removesuffix("…").rstrip("]")
    return token.split("=", 1)[0] if token.startswith("-") else token


@dataclass(frozen=True)
class Shown:
    command: str  # "" when only global options are shown
    options: tuple[str, ...]
    global_options: tuple[str, ...]


def _takes_value(command, option: str) -> bool:  # noqa: ANN001 - a click command, as typer builds it
    for param in command.params:
        if param.param_type_name == "option" and option in param.opts + param.secondary_opts:
            return not (param.is_flag or param.count)
    return False


def parse_invocation(text: str) -> Shown | None:
    """Which command and options `devstack <text>` names, as the CLI would parse them."""
    root = typer.main.get_command(app)
    words = [_word(token) for token in text.split()]
    words = [w for w in words if w]
    global_options: list[str] = []
    while words and words[0].startswith("-") and words[0] != "--":
        option = words.pop(0)
        global_options.append(option)
        if _takes_value(root, option) and words:
            words.pop(0)
    if not words:
        return Shown("", (), tuple(global_options)) if global_options else None
    command, rest = words[0], words[1:]
    target = root.commands.get(command)
    interspersed = target.allow_interspersed_args if target is not None else True
    options: list[str] = []
    value_next = False
    for word in rest:
        if word == "--":
            break  # what follows is exec's command line
        if word.startswith("-"):
            options.append(word)
            value_next = target is not None and _takes_value(target, word)
        elif not value_next and not interspersed:
            break  # the first argument begins exec's command line
        else:
            value_next = False
    return Shown(command, tuple(options), tuple(global_options))


@cache
def help_text(command: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [command, "--help"] if command else ["--help"])
    return result.exit_code, result.output


def _in_help(option: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def command_problems(where: str, shown: Shown) -> list[str]:
    problems = []
    code, text = help_text(shown.command)
    if code != 0:
        return [f"{where}: `devstack {shown.command} --help` exits {code}: no such command"]
    _, root_text = help_text("")
    problems += [f"{where}: devstack has no global option {option}"
                 for option in shown.global_options if not _in_help(option, root_text)]
    problems += [f"{where}: `devstack {shown.command}` has no option {option} (not in its --help)"
                 for option in shown.options if not _in_help(option, text)]
    return problems


OPTION_SPAN = re.compile(r"^(--?[A-Za-z][\w-]*)")


def _option_spans(text: str) -> list[str]:
    """The options a text names in code spans of their own (`--rmi`, `-p HOST:CONTAINER`)."""
    spans = (m.group(2).strip() for m in CODE_SPAN.finditer(text))
    return [found.group(1) for found in map(OPTION_SPAN.match, spans) if found]


def described_options(page: Page) -> list[tuple[str, tuple[str, ...], str]]:
    """Options named on their own beside the commands they belong to: in a table row whose first
    cell shows `devstack COMMAND`, and in a paragraph of global options (`Global options ...`)."""
    found = []
    for line in page.prose.splitlines():
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1] if line.lstrip().startswith("|") else []
        if len(cells) < 2:
            continue
        commands = tuple(sorted({s.command for s in map(parse_invocation, invocations(Page(page.path, cells[0], ())))
                                 if s is not None and s.command}))
        if commands:
            found += [(option, commands, line) for option in _option_spans("|".join(cells[1:]))]
    for paragraph in re.split(r"\n\s*\n", page.prose):
        if paragraph.lstrip().startswith("Global options"):
            found += [(option, ("",), paragraph) for option in _option_spans(paragraph)]
    return found


def unknown_commands(page: Page) -> list[str]:
    problems = []
    for text in invocations(page):
        shown = parse_invocation(text)
        if shown is not None:
            problems += command_problems(f"{page.name}: `devstack {text}`", shown)
    for option, commands, _ in described_options(page):
        helps = [help_text(command) for command in commands]
        if not any(code == 0 and _in_help(option, text) for code, text in helps):
            named = " or ".join(f"`devstack {c}`" if c else "devstack (global)" for c in commands)
            problems.append(f"{page.name}: {option}, shown for {named}, is not in its --help")
    return problems


# -- the tests ----------------------------------------------------------------------------------


def test_every_relative_link_resolves():
    problems = [problem for page in pages() for problem in broken_links(page)]
    assert not problems, "\n".join(problems)


def test_every_command_shown_exists_with_its_options():
    problems = [problem for page in pages() for problem in unknown_commands(page)]
    assert not problems, "\n".join(problems)


def test_the_docs_show_commands_and_link_to_each_other():
    """The checks above see what they check: commands in every form, links into every page."""
    shown = [parse_invocation(text) for page in pages() for text in invocations(page)]
    commands = {s.command for s in shown if s is not None}
    assert {"up", "watch", "down", "build", "status", "stop", "start", "logs", "shell", "exec", "config",
            "doctor"} <= commands
    linked = {(page.path.parent / t.partition("#")[0]).resolve()
              for page in pages() for t in link_targets(page) if not EXTERNAL.match(t)}
    assert INDEX in linked, "README.md links to docs/README.md, the index"
    unlisted = [p.name for p in sorted(DOCS.glob("*.md"))
                if p != INDEX and p not in {(DOCS / t.partition("#")[0]).resolve() for t in link_targets(read_page(INDEX))}]
    assert not unlisted, f"docs/README.md, the index, lists every page: missing {unlisted}"


def test_github_slugs():
    assert github_slug("A load-balanced environment: `INSTANCES`") == "a-load-balanced-environment-instances"
    assert github_slug("EB's environment") == "ebs-environment"
    assert github_slug("`compose/docker-compose.yml`") == "composedocker-composeyml"
    assert github_slug("`docker_envs`") == "docker_envs"
    assert github_slug("Ending a foreground `up`") == "ending-a-foreground-up"
    assert github_slug("The proxy's flavour: stock nginx or OpenResty") == "the-proxys-flavour-stock-nginx-or-openresty"
    assert github_slug("Watching — save → see") == "watching--save--see"


def test_the_checks_fail_on_a_broken_link_and_an_unknown_command():
    page = Page(REPO / "docs" / "made-up.md",
                "# Made up\n\nSee [here](commands.md#no-such-heading), [there](gone.md),\n"
                "[fine](commands.md#devstack-doctor) and [self](#made-up).\n\n"
                "Run `devstack frobnicate`, `devstack up --no-such-flag -d`, `devstack --nope status`,\n"
                "`devstack exec -u root notebook -- ls -la` and `devstack --set A=1 logs -f proxy`.\n",
                ("devstack down --rmi && devstack bogus",))
    table = Page(page.path, "| command | what |\n| --- | --- |\n| `devstack down` | `--rmi`, `--purge` |\n\n"
                            "Global options: `--set KEY=VALUE`, `--verbose`.\n", ())
    assert broken_links(page) == [
        "docs/made-up.md: link to commands.md#no-such-heading: no heading of docs/commands.md has the anchor "
        "#no-such-heading",
        "docs/made-up.md: link to gone.md: gone.md does not exist",
    ]
    assert unknown_commands(page) == [
        "docs/made-up.md: `devstack bogus`: `devstack bogus --help` exits 2: no such command",
        "docs/made-up.md: `devstack frobnicate`: `devstack frobnicate --help` exits 2: no such command",
        "docs/made-up.md: `devstack up --no-such-flag -d`: `devstack up` has no option --no-such-flag (not in its --help)",
        "docs/made-up.md: `devstack --nope status`: devstack has no global option --nope",
    ]
    assert unknown_commands(table) == [
        "docs/made-up.md: --purge, shown for `devstack down`, is not in its --help",
        "docs/made-up.md: --verbose, shown for devstack (global), is not in its --help",
    ]
