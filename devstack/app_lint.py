"""The traps in a project's own app files, each named with its file and line, and an inventory of
its `.ebextensions`: what EB would run, and what devstack does in its place.

Findings are data (proxy.lint's `Finding`); `up` reports them, `doctor` shows them with the
inventory. Reading only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from .proxy.lint import Finding
from .spec import StackSpec
from .spec.app import SUPERVISORD, supervisor_programs

JUPYTER_CONFIG_SCRIPT = "jupyter_cors.sh"
EBEXTENSIONS = ".ebextensions"

# Supervisor 4 (Debian's, and any image built today) accepts these characters in a program's name.
_PROGRAM_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def lint_app(spec: StackSpec) -> list[Finding]:
    """Every trap in the project's app files (none when devstack's bundled images run)."""
    root = spec.app.root
    if root is None:
        return []
    environment = dict(spec.service("notebook").environment)
    findings = check_jupyter_script(root / JUPYTER_CONFIG_SCRIPT, environment, spec)
    findings += check_supervisord(root / SUPERVISORD)
    for image in spec.images:
        findings += check_token_copy(image.context / image.dockerfile)
    return findings


def check_jupyter_script(path: Path, environment: dict[str, str], spec: StackSpec) -> list[Finding]:
    """Production's `jupyter_cors.sh` appends settings to Jupyter's configuration at build time."""
    if not path.is_file():
        return []
    findings = []
    jupyter = spec.urls()["jupyter"].rstrip("/")
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if (match := re.search(r"websocket_url\s*=\s*'(wss?://[^']*)'", line)) is not None:
            value = match[1]
            resolved = re.sub(r"\$\{?(\w+)\}?", lambda m: environment.get(m[1], m[0]), value)
            shown = f"{value}, {resolved} here" if resolved != value else value
            findings.append(Finding(
                "warning", path, number,
                f"websocket_url is {shown}: a browser opens its kernels' websockets there, not on this stack "
                "(on production's host name, it talks to production)",
                "drop the line (Jupyter then uses the page's own origin), or set the variable it uses to "
                f"{jupyter.removeprefix('http://')}", "websocket-url"))
        if re.search(r"allow_origin\s*=\s*'\*'", line):
            findings.append(Finding(
                "warning", path, number, "allow_origin = '*' lets any web page call Jupyter's API",
                f"allow_origin = '{spec.proxy.edx_origin}' (EDX_HOSTNAME's origin)", "allow-origin-any"))
        if "ALLOW-FROM" in line:
            findings.append(Finding(
                "warning", path, number,
                "X-Frame-Options ALLOW-FROM is ignored by current browsers; frame-ancestors is what counts",
                "drop the X-Frame-Options header and keep Content-Security-Policy frame-ancestors", "allow-from"))
        if re.search(r"Access-Control-Allow-Origin'\s*:\s*'\*'", line) and \
                re.search(r"Access-Control-Allow-Credentials'\s*:\s*'true'", line, re.IGNORECASE):
            findings.append(Finding(
                "warning", path, number,
                "Access-Control-Allow-Origin '*' with credentials: browsers refuse such responses",
                f"name the origin ({spec.proxy.edx_origin})", "cors-wildcard"))
    return findings


def check_supervisord(path: Path) -> list[Finding]:
    """A program name that supervisor 4 refuses makes supervisord exit at once, and the container with it."""
    if not path.is_file():
        return []
    findings = []
    for program in supervisor_programs(path):
        if not _PROGRAM_NAME.match(program.name):
            bad = next(ch for ch in program.name if not re.match(r"[A-Za-z0-9_.-]", ch))
            findings.append(Finding(
                "error", path, program.line,
                f"[program:{program.name}]: supervisor 4 refuses it (Invalid name: {program.name!r} because of "
                f"character: {bad!r}) and the container exits at once; production's supervisor 3 accepted it",
                f"rename it, e.g. [program:{re.sub(r'[^A-Za-z0-9_.-]+', '-', program.name)}]", "supervisor-name"))
    return findings


def check_token_copy(dockerfile: Path) -> list[Finding]:
    """`COPY .deployment_token`: production's token in a layer of the base image."""
    if not dockerfile.is_file():
        return []
    findings = []
    for number, line in enumerate(dockerfile.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        words = line.split()
        if words and words[0].upper() in ("COPY", "ADD") and any(".deployment_token" in w for w in words[1:-1]):
            findings.append(Finding(
                "warning", dockerfile, number,
                "this COPY puts DEPLOYMENT_TOKEN in an image layer (devstack sends the file empty)",
                "mount the token as a BuildKit secret (`RUN --mount=type=secret,id=deployment_token ...`)",
                "token-copy"))
    return findings


# -- the inventory of .ebextensions ------------------------------------------------------------


@dataclass(frozen=True)
class EbEntry:
    """One thing an `.ebextensions` file asks of EB, and what devstack does in its place."""

    file: Path
    line: int
    kind: str  # "hook", "packages", "commands", "container_commands", "option_settings", "Resources"
    name: str
    here: str  # what devstack does instead, or "not reproduced: ..."

    def describe(self) -> str:
        return f"{self.file}:{self.line}: {self.kind} {self.name}: {self.here}"


# What each of production's hooks does, recognised by what it runs; the first match counts.
_HOOK_STAND_INS = (
    (("DEPLOYMENT_TOKEN", ".deployment_token"), "DEPLOYMENT_TOKEN comes from .env or the environment, and the "
                                                "build gets .deployment_token empty"),
    (("docker_envs",), "devstack writes docker_envs from the environment properties (.devstack/docker_envs)"),
    (("mount -t nfs", "EFS_"), "NOTEBOOKS_DIR stands in for EFS, shared as EFS is"),
    (("openresty",), "the proxy runs OpenResty (PROXY_FLAVOR)"),
    (("upstream", "sites-enabled", "sites-available"), "devstack writes the upstreams and loads the proxy files"),
)


def ebextensions_inventory(project_dir: Path) -> list[EbEntry]:
    """Each hook, `packages`, `commands`, `container_commands` entry of `.ebextensions/*.config`."""
    entries: list[EbEntry] = []
    for config in sorted((project_dir / EBEXTENSIONS).glob("*.config")):
        text = config.read_text(encoding="utf-8", errors="replace")
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError:
            continue  # EB skips such a file with a warning
        if not isinstance(document, dict):
            continue
        for path, entry in (document.get("files") or {}).items():
            content = str(entry.get("content", "")) if isinstance(entry, dict) else ""
            here = next((what for needles, what in _HOOK_STAND_INS if any(n in content for n in needles)),
                        "not reproduced: devstack runs no EB hook")
            entries.append(EbEntry(config, _line_of(text, str(path)), "hook", str(path), here))
        for manager, packages in (document.get("packages") or {}).items():
            names = ", ".join(packages) if isinstance(packages, dict) else str(packages)
            entries.append(EbEntry(config, _line_of(text, "packages:"), "packages", f"{manager}: {names}",
                                   "not reproduced: the EB host's packages; the container has its image's"))
        for section in ("commands", "container_commands"):
            for name in document.get(section) or {}:
                entries.append(EbEntry(config, _line_of(text, str(name)), section, str(name),
                                       "not reproduced: devstack runs no EB command"))
        if "Resources" in document:
            names = ", ".join(document["Resources"] or {})
            entries.append(EbEntry(config, _line_of(text, "Resources:"), "Resources", names,
                                   "not reproduced: one instance, no load balancer"))
    return entries


def _line_of(text: str, needle: str) -> int:
    index = text.find(needle)
    return text.count("\n", 0, index) + 1 if index >= 0 else 1
