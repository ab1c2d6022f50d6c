"""The proxy lint: the configuration nginx will load, parsed with crossplane (not regular
expressions), checked for the mistakes that EB deployments of this project make.

Each finding names the file the user edits, the line, and the fix. Findings are
data; the CLI, `up` and `doctor` decide how to show them. `nginx -t` in the
sidecar remains the judge of what loads: the lint explains what would misbehave.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from .modules import module_of
from .nginxconf import Directive, ParsedFile, listen_port, parse_file
from .render import RenderedProxy, render_proxy_config
from ..settings import Settings, is_number
from ..cookie import COOKIE_NAME
from ..hosts import LOOPBACK_NAMES, is_loopback, is_wildcard, same_site, host_pattern
from ..spec import NGINX, Flavor, Listener, NetworkLayout, StackSpec
from ..spec.flavor import FLAVOR_SETTING

# Log formats nginx knows without a log_format directive.
BUILTIN_LOG_FORMATS = {"combined"}
# Files the nginx image ships in /etc/nginx that a configuration may include by absolute path.
IMAGE_FILES = {"mime.types", "fastcgi_params", "fastcgi.conf", "scgi_params", "uwsgi_params",
               "koi-utf", "koi-win", "win-utf"}
EB_PREFIX = "/etc/nginx/"  # EB's nginx prefix: absolute includes there mean the tree devstack renders
# The finding that nginx -t is certain to refuse, with a better message than its own: `up` stops on it.
MODULE_MISSING = "module-missing"
SERVICE_NAMES = {"sifu": "Sifu", "jupyter": "Jupyter", "docker": "the container's first port (Sifu)"}


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" (will not work) or "warning" (works, but not as intended)
    file: Path | None
    lineno: int | None
    message: str
    fix: str
    code: str

    def where(self) -> str:
        if self.file is None:
            return ""
        return f"{self.file}:{self.lineno}" if self.lineno else str(self.file)

    def describe(self) -> str:
        where = self.where()
        return f"{where + ': ' if where else ''}{self.message}; fix: {self.fix}"


@dataclass(frozen=True)
class LintContext:
    """What the configuration must agree with, from the stack description."""

    upstream_ports: dict[str, int]  # upstream name -> the notebook port it must point at
    network: NetworkLayout  # the listeners: which port nginx must serve for Sifu, for Jupyter
    edx_origin: str
    hostnames: tuple[str, ...] = LOOPBACK_NAMES  # the Host names the stack is served under
    flavor: Flavor = NGINX  # the nginx that loads the configuration, and the modules it has

    @property
    def served_ports(self) -> set[int]:
        return {listener.nginx_port for listener in self.network.published}

    @property
    def bind_address(self) -> str:
        return self.network.bind_address

    def listener_on(self, port: int) -> Listener | None:
        return next((listener for listener in self.network.listeners if listener.nginx_port == port), None)

    def other(self, listener: Listener) -> Listener:
        return self.network.jupyter if listener is self.network.sifu else self.network.sifu


def lint_context(spec: StackSpec) -> LintContext:
    proxy = spec.proxy
    return LintContext(
        upstream_ports={u.name: u.port for u in proxy.upstreams},
        network=proxy.network,
        edx_origin=proxy.edx_origin,
        hostnames=proxy.hostnames,
        flavor=proxy.flavor,
    )


def lint_stack(spec: StackSpec, settings: Settings) -> list[Finding]:
    """Everything the proxy will load (plus the project's unloaded upstream files), and the frame check."""
    rendered = render_proxy_config(spec.proxy, "192.0.2.10")  # an address for documentation (RFC 5737)
    findings = lint_rendered(rendered, lint_context(spec), spec.proxy.server_templates,
                             unloaded=spec.proxy.project_files.al1_hosts)
    findings += [Finding("error", path, None, f"symlink points at nothing (it targets {_readlink(path)})",
                         "point it at an existing file or remove it: EB's `cp` and nginx both fail on it",
                         "dangling-symlink")
                 for path in spec.proxy.project_files.dangling]
    frame = frame_finding(settings.edx_host, spec.public_host, settings.bind_address, settings.sifu_port)
    if frame is not None:
        findings.append(frame)
    return findings


def lint_rendered(rendered: RenderedProxy, ctx: LintContext, own_templates: Path,
                  unloaded: tuple[Path, ...] = ()) -> list[Finding]:
    """Lint a rendered tree. Files that came from devstack's own templates are held to the tree-wide
    checks only; the project's files get every check, reported at their own path and line."""
    with tempfile.TemporaryDirectory(prefix="devstack-lint-") as tmp:
        root = Path(tmp)
        parsed: list[tuple[str, ParsedFile, bool]] = []  # (rel, parsed with the user's path, is the project's)
        for rel, content in rendered.files.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
            source = rendered.sources.get(rel, target)
            ours = _is_within(source, own_templates)
            parsed.append((rel, _with_path(parse_file(target), source), not ours))
        extra = [(f"(not loaded) {p.name}", parse_file(p), True) for p in unloaded]

    findings: list[Finding] = []
    for _, file, is_project in parsed + extra:
        findings += [Finding("error", file.path, line, f"nginx cannot parse this: {message}",
                             "correct the syntax (nginx -t in the sidecar would refuse it too)", "syntax")
                     for line, message in file.errors]
        findings += check_upstream_ports(file, ctx)
        findings += check_modules(file, ctx)
        if is_project:
            findings += check_routes(file, ctx)
            findings += check_listens(file, ctx)
            findings += check_host_header(file, ctx)
            findings += check_host_gate(file, ctx)
            findings += check_cors(file)
            findings += check_frame_options(file, ctx)
    findings = [_not_loaded(f) if f.file in unloaded else f for f in findings]
    loaded = [file for _, file, _ in parsed]
    findings += check_log_formats(loaded)
    findings += check_includes(loaded, set(rendered.files))
    findings += check_served(loaded, ctx)
    return findings


def _not_loaded(finding: Finding) -> Finding:
    """A finding in a file nothing loads (`.ebextensions/.nginx/hosts/`): devstack does not, and no hook
    of production's repository does (an older one appended it to the upstream file). Worth a warning,
    in case such a hook is still about; never an error, since nothing loaded misbehaves because of it."""
    return replace(finding, severity="warning",
                   message=f"{finding.message} (in a file that is not loaded: neither devstack nor "
                           "production's deploy hooks include it)",
                   fix=f"{finding.fix}, or remove the file")


# -- the checks: pure functions of parsed files -------------------------------------


def check_upstream_ports(file: ParsedFile, ctx: LintContext) -> list[Finding]:
    """`upstream sifu { server ip:3335; }`: the seed's own hosts.conf swaps Sifu's and Jupyter's ports."""
    owner_of = {port: name for name, port in ctx.upstream_ports.items() if name != "docker"}
    findings = []
    for directive in file.walk():
        upstream = directive.enclosing("upstream")
        if directive.name != "server" or upstream is None or not upstream.args or not directive.args:
            continue
        name = upstream.args[0]
        expected = ctx.upstream_ports.get(name)
        port = _address_port(directive.args[0])
        if expected is None or port is None or port == expected:
            continue
        other = owner_of.get(port)
        belongs = f", which is {SERVICE_NAMES[other]}'s port" if other else ""
        host = directive.args[0].rsplit(":", 1)[0]
        findings.append(Finding(
            "error", file.path, directive.line,
            f"upstream {name} points at port {port}{belongs}; {SERVICE_NAMES.get(name, name)} listens on {expected}",
            f"write `server {host}:{expected};` in upstream {name}", "upstream-port"))
    return findings


def check_modules(file: ParsedFile, ctx: LintContext) -> list[Finding]:
    """A directive of a module the running flavour lacks: nginx refuses the file (`unknown directive`)."""
    findings = []
    for directive in file.walk():
        module = module_of(directive.name)
        if module is None or module in ctx.flavor.modules:
            continue
        findings.append(Finding(
            "error", file.path, directive.line,
            f"`{directive.name}` comes with the {module} module, which {ctx.flavor.title} lacks "
            f"({FLAVOR_SETTING}={ctx.flavor.name}); OpenResty bundles it, as production's EB host ran",
            f"set {FLAVOR_SETTING}=openresty (or auto) in .env, or remove the directive", MODULE_MISSING))
    return findings


def check_routes(file: ParsedFile, ctx: LintContext) -> list[Finding]:
    """A server on Sifu's port that proxies to the jupyter upstream, or the other way round."""
    findings = []
    for server in _servers(file):
        serves = [listener for p in sorted(_server_ports(server)) if (listener := ctx.listener_on(p)) is not None]
        for directive in _walk_block(server):
            if directive.name != "proxy_pass" or not directive.args:
                continue
            target = _upstream_name(directive.args[0])
            for listener in serves:
                if target not in ("sifu", "jupyter") or target == listener.name:
                    continue
                findings.append(Finding(
                    "error", file.path, directive.line,
                    f"the server listening on {listener.nginx_port} ({SERVICE_NAMES[listener.name]}'s port) "
                    f"proxies to the {target} upstream",
                    f"write `proxy_pass http://{listener.name};` here, or listen on {ctx.other(listener).nginx_port}",
                    "route"))
    return findings


def check_listens(file: ParsedFile, ctx: LintContext) -> list[Finding]:
    """A listen port nothing on the host reaches; in host mode, a listen on every interface."""
    findings = []
    for directive in file.walk():
        if directive.name != "listen" or directive.enclosing("server") is None:
            continue
        port = listen_port(directive.args)
        if port is None:
            continue
        sifu, jupyter = ctx.network.listeners
        if port not in ctx.served_ports:
            if ctx.network.host_mode:
                fix = (f"listen on {sifu.nginx_port} ({sifu.setting}) or {jupyter.nginx_port} "
                       f"({jupyter.setting}), or set those settings to the ports your files listen on")
            else:
                fix = (f"listen on {sifu.nginx_port} (Sifu) or {jupyter.nginx_port} (Jupyter), which devstack "
                       "publishes on SIFU_PORT and JUPYTER_PORT")
            findings.append(Finding("warning", file.path, directive.line,
                                    f"nginx listens on {port} here, which devstack does not publish: "
                                    "nothing on the host reaches this server", fix, "unpublished-listen"))
        elif ctx.network.host_mode and ":" not in directive.args[0] and not is_wildcard(ctx.bind_address):
            findings.append(Finding(
                "warning", file.path, directive.line,
                f"with NETWORK_MODE=host, `listen {directive.args[0]}` binds every interface of this machine, "
                f"not BIND_ADDRESS={ctx.bind_address}",
                f"write `listen {ctx.bind_address}:{port};` for a local stack (EB's hosts listen on all)",
                "host-mode-listen"))
    return findings


def check_host_header(file: ParsedFile, ctx: LintContext) -> list[Finding]:
    """`proxy_set_header Host $host` drops the port: on a port other than 80, Jupyter compares the
    browser's Origin (with port) with Host (without) and refuses websockets as cross-origin."""
    findings = []
    for server in _servers(file):
        ports = _server_ports(server)
        to_jupyter = ctx.network.jupyter.nginx_port in ports or any(
            d.name == "proxy_pass" and d.args and _upstream_name(d.args[0]) == "jupyter" for d in _walk_block(server))
        if not ports or ports == {80} or not to_jupyter:
            continue
        for directive in _walk_block(server):
            if directive.name == "proxy_set_header" and len(directive.args) >= 2 \
                    and directive.args[0].lower() == "host" and directive.args[1] == "$host":
                port = sorted(ports - {80})[0]
                findings.append(Finding(
                    "warning", file.path, directive.line,
                    f"`proxy_set_header Host $host` on port {port} drops the port: Jupyter then refuses its "
                    f"kernel websockets as cross-origin (unless allow_origin, {ctx.edx_origin} here, covers "
                    "the notebook's own origin)",
                    "write `proxy_set_header Host $http_host;`", "host-header"))
    return findings


def check_host_gate(file: ParsedFile, ctx: LintContext) -> list[Finding]:
    """A server on Sifu's or Jupyter's port that answers to any Host header lets a web page reach the
    stack by DNS rebinding (its name re-pointed at this machine). devstack's own servers refuse other
    names; a project's files are loaded unchanged, so this says what they leave to Jupyter's own check."""
    findings = []
    for server in _servers(file):
        if not _server_ports(server) & ctx.served_ports:
            continue
        checks_host = any(d.name == "if" and any(var in arg for arg in d.args for var in ("$host", "$http_host"))
                          for d in _walk_block(server))
        if not checks_host:
            findings.append(Finding(
                "warning", file.path, server.line,
                "this server answers to any Host header: a web page whose name is re-pointed at this machine "
                "(DNS rebinding) reaches Sifu through it; only Jupyter's own Host check (local_hostnames, "
                "which devstack sets) still refuses it",
                f"refuse other names: `if ($host !~* \"{host_pattern(ctx.hostnames)}\") {{ return 421; }}` in the server",
                "host-unchecked"))
    return findings


def check_cors(file: ParsedFile) -> list[Finding]:
    """`Access-Control-Allow-Origin: *` with credentials: browsers refuse such responses."""
    findings = []
    for block in [d for d in file.walk() if d.block is not None] + [None]:
        directives = block.block if block is not None else file.directives
        headers = {d.args[0].lower(): d for d in directives
                   if d.name == "add_header" and len(d.args) >= 2}
        origin = headers.get("access-control-allow-origin")
        credentials = headers.get("access-control-allow-credentials")
        if origin is not None and origin.args[1] == "*" and credentials is not None \
                and credentials.args[1].lower() == "true":
            findings.append(Finding(
                "warning", file.path, origin.line,
                "`Access-Control-Allow-Origin *` together with `Access-Control-Allow-Credentials true`: "
                "browsers refuse credentialed responses with a wildcard origin",
                "name the origin, e.g. `add_header Access-Control-Allow-Origin $http_origin;` after checking it, "
                "or the edX origin", "cors-wildcard"))
    return findings


def check_frame_options(file: ParsedFile, ctx: LintContext) -> list[Finding]:
    """X-Frame-Options ALLOW-FROM is ignored by current browsers; DENY/SAMEORIGIN stop edX framing."""
    findings = []
    for directive in file.walk():
        if directive.name != "add_header" or len(directive.args) < 2 or directive.args[0].lower() != "x-frame-options":
            continue
        value = directive.args[1].strip().upper()
        csp = f"add_header Content-Security-Policy \"frame-ancestors 'self' {ctx.edx_origin}\";"
        if value.startswith("ALLOW-FROM"):
            findings.append(Finding(
                "warning", file.path, directive.line,
                "`X-Frame-Options: ALLOW-FROM` is ignored by current browsers; frame-ancestors is what counts",
                f"remove it; Jupyter already sends frame-ancestors for EDX_HOSTNAME (or `{csp}`)", "allow-from"))
        elif value in ("DENY", "SAMEORIGIN"):
            findings.append(Finding(
                "warning", file.path, directive.line,
                f"`X-Frame-Options: {value}` stops {ctx.edx_origin} from framing the notebook",
                f"remove it; Jupyter sends frame-ancestors for EDX_HOSTNAME (or `{csp}`)", "frame-options"))
    return findings


def check_log_formats(files: list[ParsedFile]) -> list[Finding]:
    """An access_log naming a log_format that no loaded file defines: nginx refuses to start."""
    defined = set(BUILTIN_LOG_FORMATS)
    for file in files:
        defined |= {d.args[0] for d in file.walk() if d.name == "log_format" and d.args}
    findings = []
    for file in files:
        for directive in file.walk():
            if directive.name != "access_log" or len(directive.args) < 2:
                continue
            name = directive.args[1]
            if "=" in name or name in defined:
                continue  # buffer=, gzip=, if= ... are options, not a format
            findings.append(Finding(
                "error", file.path, directive.line,
                f"access_log uses the log format {name!r}, which no loaded file defines",
                f"define it with `log_format {name} ...;` in the http block, or use one of "
                f"{', '.join(sorted(defined))}", "log-format"))
    return findings


def check_includes(files: list[ParsedFile], tree: set[str]) -> list[Finding]:
    """An `include` of a file that does not exist (a glob matching nothing is fine for nginx)."""
    findings = []
    for file in files:
        for directive in file.walk():
            if directive.name != "include" or not directive.args:
                continue
            target = directive.args[0]
            rel = target[len(EB_PREFIX):] if target.startswith(EB_PREFIX) else target
            if rel.startswith("/"):
                findings.append(Finding(
                    "warning", file.path, directive.line,
                    f"include {target} is outside EB's /etc/nginx: devstack cannot tell whether it exists",
                    "include a path relative to nginx.conf's folder, such as conf.d/extra.conf", "include-outside"))
                continue
            if any(ch in rel for ch in "*?["):
                continue
            if rel in tree or rel in IMAGE_FILES:
                continue
            findings.append(Finding(
                "error", file.path, directive.line, f"include {target} points at nothing",
                f"add the file to the project's proxy files, or remove the include (files: {', '.join(sorted(tree))})",
                "include-missing"))
    return findings


def check_served(files: list[ParsedFile], ctx: LintContext) -> list[Finding]:
    """A published port that no server listens on: the host gets connection resets there."""
    listening: set[int] = set()
    for file in files:
        for directive in file.walk():
            if directive.name == "listen" and directive.enclosing("server") is not None:
                port = listen_port(directive.args)
                if port is not None:
                    listening.add(port)
    findings = []
    for listener in ctx.network.listeners:
        port = listener.nginx_port
        if port not in listening:
            findings.append(Finding(
                "error", None, None, f"no server listens on {port} ({listener.title}'s port, {listener.setting})",
                f"add a server with `listen {port};` that proxies to http://{listener.name}", "not-served"))
    http = ctx.network.http
    if http is not None and http.nginx_port not in listening:
        findings.append(Finding(
            "error", None, None, f"no server listens on {http.nginx_port}, which HTTP_PORT publishes (the EB "
            "platform's default server)", f"add a server with `listen {http.nginx_port};` that proxies to "
            "http://docker, or leave HTTP_PORT empty", "not-served"))
    return findings


def frame_finding(edx_host: str, served_host: str, bind_address: str, sifu_port: int) -> Finding | None:
    """A notebook framed by edX keeps its SameSite=Lax cookies only when both are one site."""
    if same_site(edx_host, served_host):
        return None
    reachable_as_edx = (edx_host.lower() in LOOPBACK_NAMES or edx_host == "0.0.0.0") and (
        is_wildcard(bind_address) or is_loopback(served_host))
    fix = (f"frame the notebook as http://{edx_host}:{sifu_port}/login (the same site as edX), not {served_host}"
           if reachable_as_edx else
           f"serve edX and the notebook under one host: set EDX_HOSTNAME to {served_host}:<edX port> "
           f"or BIND_ADDRESS to the address of {edx_host}")
    return Finding(
        "warning", None, None,
        f"EDX_HOSTNAME's host {edx_host} and the notebook's address {served_host} are different sites: "
        f"inside edX's frame the browser withholds the {COOKIE_NAME} cookie (SameSite=Lax), "
        "so the proxy answers 403", fix, "frame-site")


# -- helpers ----------------------------------------------------------------------


def _with_path(parsed: ParsedFile, path: Path) -> ParsedFile:
    """The same parse, reported at the path the user edits."""
    def move(directives: tuple[Directive, ...], parents: tuple[Directive, ...]) -> tuple[Directive, ...]:
        out = []
        for d in directives:
            moved = Directive(d.name, d.args, d.line, path, parents)
            if d.block is not None:
                moved = Directive(d.name, d.args, d.line, path, parents, move(d.block, (*parents, moved)))
            out.append(moved)
        return tuple(out)

    return ParsedFile(path, move(parsed.directives, ()), parsed.errors)


def _servers(file: ParsedFile) -> list[Directive]:
    return [d for d in file.walk() if d.name == "server" and d.block is not None]


def _server_ports(server: Directive) -> set[int]:
    return {p for d in server.block or () if d.name == "listen" and (p := listen_port(d.args)) is not None}


def _walk_block(block: Directive):
    for directive in block.block or ():
        yield directive
        if directive.block:
            yield from _walk_block(directive)


def _upstream_name(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0].split(":", 1)[0]


def _address_port(address: str) -> int | None:
    if address.startswith("unix:") or ":" not in address:
        return None
    port = address.rsplit(":", 1)[1]
    return int(port) if is_number(port) else None


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _readlink(path: Path) -> str:
    try:
        return str(path.readlink())
    except OSError:
        return "?"

