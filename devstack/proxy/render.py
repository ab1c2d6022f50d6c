"""The EB-mimic proxy's configuration: rendered from templates, staged, checked, swapped.

Each configuration is written whole into a new generation folder
(`.devstack/proxy/gen-N/`). It becomes `current` (an atomically replaced
symlink, which the sidecar's nginx reads) only after `nginx -t` accepts it,
so a broken edit never replaces a working configuration, even across a
restart of the sidecar.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from ..errors import ProxyConfigError
from ..hosts import host_pattern
from .nginxconf import listen_ports
from ..cookie import COOKIE_NAME
from ..noise import is_config_noise
from ..spec import PROXY_MOUNT, ProxySpec

# Editor droppings and other files that are never part of the configuration.
_GENERATION = re.compile(r"^gen-(\d+)$")
KEEP_GENERATIONS = 3


@dataclass(frozen=True)
class RenderedProxy:
    files: dict[str, str]  # path inside the config tree -> content
    sources: dict[str, Path] = field(default_factory=dict)  # path -> the file it came from


# devstack's own server files, by the port they serve (used where a project's files serve neither).
_BUNDLED_SERVERS = {"sites-enabled/sifu.conf": "sifu", "sites-enabled/jupyter.conf": "jupyter"}
_EB_PREFIX = "eb/"  # pieces of the EB platforms' own configuration, placed only with a project's files
# The platform's default server on port 80 (Amazon Linux 2's is in nginx.conf): only when HTTP_PORT publishes it.
_DEFAULT_SERVER = "sites-enabled/elasticbeanstalk-nginx-docker-proxy.conf"


def render_proxy_config(proxy: ProxySpec, notebook_ip: str) -> RenderedProxy:
    """The whole configuration tree nginx loads. Pure: reads templates and the project's files.

    Without project files: devstack's template tree (nginx/, minus eb/), `*.j2` through Jinja2.
    With them: nginx.conf, the upstream file as the EB hook writes it, the project's files
    unchanged where their platform puts them, and (Amazon Linux 2 only) devstack's server for
    a published port that none of the project's files serves.
    """
    templates = _render_templates(proxy, proxy.network.upstream_host or notebook_ip)
    project = proxy.project_files
    files: dict[str, str] = {}
    sources: dict[str, Path] = {}

    def put(rel: str, content: str, source: Path) -> None:
        files[rel] = content
        sources[rel] = source

    default_server = proxy.network.http is not None and _DEFAULT_SERVER in templates
    if not project.any:
        for rel, (content, source) in templates.items():
            if not rel.startswith(_EB_PREFIX) and (rel != _DEFAULT_SERVER or default_server):
                put(rel, content, source)
        return RenderedProxy(files, sources)

    put("nginx.conf", *templates["nginx.conf"])
    al2 = bool(project.al2_http or project.al2_locations)
    for rel, (content, source) in templates.items():
        if rel.startswith(_EB_PREFIX):
            rel = rel[len(_EB_PREFIX):]
            if rel.startswith("conf.d/elasticbeanstalk/") and not al2:
                continue
            put(rel, content, source)
    for path in project.al1_servers:
        put(f"sites-enabled/{path.name}", _read(path), path)
    # Amazon Linux 1 keeps the platform's default server beside the project's files, unless one of them serves 80.
    if project.al1_servers and not al2 and default_server and \
            proxy.network.http.nginx_port not in listen_ports(project.al1_servers):  # type: ignore[union-attr]
        put(_DEFAULT_SERVER, *templates[_DEFAULT_SERVER])
    for path in project.al2_http:
        put(f"conf.d/{path.name}", _read(path), path)
    for path in project.al2_locations:
        put(f"conf.d/elasticbeanstalk/{path.name}", _read(path), path)
    if not project.al1_servers:
        served = listen_ports(project.al2_http)
        for rel, service in _BUNDLED_SERVERS.items():
            if rel in templates and getattr(proxy.network, service).nginx_port not in served:
                put(rel, *templates[rel])
    return RenderedProxy(files, sources)


def _render_templates(proxy: ProxySpec, upstream_host: str) -> dict[str, tuple[str, Path]]:
    """Every file of devstack's template tree: `*.j2` through Jinja2, others verbatim."""
    root = proxy.server_templates
    if not root.is_dir():
        raise ProxyConfigError(f"{root}: the proxy templates folder does not exist: point PROXY_TEMPLATES "
                               "at a tree like devstack's nginx/, or leave it empty for the bundled one")
    env = _environment(root)
    context = {
        "sifu_port": proxy.sifu_port,
        "jupyter_port": proxy.jupyter_port,
        "listen_sifu": proxy.network.sifu.nginx_listen,
        "listen_jupyter": proxy.network.jupyter.nginx_listen,
        # The default server's (EB's port 80 in the sidecar; HTTP_PORT itself on the host network).
        "listen_http": proxy.network.http.nginx_listen if proxy.network.http is not None else "80",
        "upstreams": proxy.upstreams,
        "notebook_ip": upstream_host,
        "auth_cookie": COOKIE_NAME,
        "hostnames": proxy.hostnames,
        "host_pattern": host_pattern(proxy.hostnames),
        "edx_origin": proxy.edx_origin,
        "al2_default_server": bool(proxy.project_files.al2_http or proxy.project_files.al2_locations),
    }
    rendered: dict[str, tuple[str, Path]] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if is_config_noise(rel.as_posix()):
            continue
        rel_posix = rel.as_posix()
        if rel_posix.endswith(".j2"):
            try:
                content = env.get_template(rel_posix).render(context)
            except jinja2.UndefinedError as exc:
                raise ProxyConfigError(f"{path}: {exc.message}: the template uses a value devstack does not "
                                       f"provide ({', '.join(sorted(context))})") from None
            except jinja2.TemplateSyntaxError as exc:
                raise ProxyConfigError(f"{path}:{exc.lineno}: template error: {exc.message}") from None
            rel_posix = rel_posix[: -len(".j2")]
        else:
            content = path.read_text(encoding="utf-8")
        rendered[rel_posix] = (content, path)
    return rendered


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProxyConfigError(f"{path}: cannot read this proxy file ({exc}); fix or remove it") from None


# Run in the sidecar: SIGHUP to nginx's master (PID 1), then wait until none of the workers that
# were there before still accepts connections. nginx starts new workers, sleeps 100 ms, then tells
# the old ones to quit (they are renamed "... is shutting down" and finish only the requests they
# hold, websockets included); until then a new connection may still get the old configuration.
# Exit 1: the signal could not be sent; exit 3: old workers still accepting after 5 s.
RELOAD_AND_WAIT = r"""
workers() {
    for c in /proc/[0-9]*/cmdline; do
        [ "$(tr -d '\0' 2>/dev/null < "$c")" = "nginx: worker process" ] && { c=${c#/proc/}; echo "${c%/cmdline}"; }
    done
}
old=$(workers)
kill -HUP 1 || exit 1
i=0
while [ "$i" -lt 500 ]; do
    left=""
    for p in $old; do
        [ "$(tr -d '\0' 2>/dev/null < "/proc/$p/cmdline")" = "nginx: worker process" ] && left="$left $p"
    done
    [ -z "$left" ] && exit 0
    sleep 0.01
    i=$((i + 1))
done
echo "old workers$left still accept connections"
exit 3
"""


@functools.lru_cache(maxsize=8)
def _environment(root: Path) -> jinja2.Environment:
    """One environment per templates folder: compiled templates are kept between renders and
    recompiled when their file changes (Jinja2 checks the modification time), so a watched
    save renders in about a millisecond."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(root)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        auto_reload=True,
    )


class ProxyConfigStore:
    """Generations of the rendered configuration in one folder mounted into the sidecar."""

    def __init__(self, config_dir: Path):
        self.config_dir = config_dir
        self.current_link = config_dir / "current"

    def current_generation(self) -> str | None:
        try:
            target = os.readlink(self.current_link)
        except OSError:
            return None
        return target if _GENERATION.match(target) else None

    def current_files(self) -> dict[str, str] | None:
        generation = self.current_generation()
        if generation is None:
            return None
        return _read_tree(self.config_dir / generation)

    def stage(self, rendered: RenderedProxy) -> str:
        """Write a new generation beside the current one; returns its name."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        numbers = [int(m[1]) for p in self.config_dir.iterdir() if (m := _GENERATION.match(p.name))]
        name = f"gen-{max(numbers, default=0) + 1}"
        folder = self.config_dir / name
        for rel, content in rendered.files.items():
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
            target.chmod(0o644)  # read by the sidecar's nginx, whatever the host umask
        _make_traversable(folder)
        return name

    def activate(self, generation: str) -> None:
        """Point `current` at a generation in one atomic step, then drop old ones."""
        tmp = self.config_dir / "current.tmp"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(generation, tmp)
        os.replace(tmp, self.current_link)
        self._prune(keep=generation)

    def discard(self, generation: str) -> None:
        shutil.rmtree(self.config_dir / generation, ignore_errors=True)

    def container_path(self, generation: str) -> str:
        """Where the sidecar sees a generation's nginx.conf."""
        return f"{PROXY_MOUNT}/{generation}/nginx.conf"

    def _prune(self, keep: str) -> None:
        generations = sorted(
            (int(m[1]), p) for p in self.config_dir.iterdir() if (m := _GENERATION.match(p.name)) and p.is_dir())
        for _, folder in generations[:-KEEP_GENERATIONS]:
            if folder.name != keep:
                shutil.rmtree(folder, ignore_errors=True)


def explain_nginx_error(output: str, generation: str, rendered: RenderedProxy, conf_dir: str = "") -> str:
    """nginx's own message, with the sidecar's paths (a generation's, or where the loaded one is linked
    in the image's folder) replaced by the files the user edits."""
    prefixes = [f"{PROXY_MOUNT}/{generation}/"]
    if conf_dir:
        prefixes.append(conf_dir.rstrip("/") + "/")
    lines = [line for line in output.splitlines() if "[emerg]" in line or "[crit]" in line or "[alert]" in line]
    message = " / ".join(lines) if lines else " ".join(output.split())

    def to_source(match: re.Match[str]) -> str:
        rel, line = match[2], match[3]
        source = rendered.sources.get(rel)
        if source is None:
            return match[0]
        shown = f"{source}:{line}"
        return shown if not source.name.endswith(".j2") else f"{shown} (rendered as {rel})"

    alternatives = "|".join(re.escape(prefix) for prefix in prefixes)
    message = re.sub(rf"({alternatives})([^\s:]+):(\d+)", to_source, message)
    for prefix in prefixes:
        message = message.replace(prefix, "")
    return message


def _read_tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _make_traversable(folder: Path) -> None:
    for dirpath, _, _ in os.walk(folder):
        os.chmod(dirpath, 0o755)
