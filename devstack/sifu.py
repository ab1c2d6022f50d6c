"""Sifu's source, fetched on the host with the user's own git and sent into the build as plain files.

Production cloned Sifu inside the image build, with DEPLOYMENT_TOKEN copied into
the image: whoever had the image had the token. devstack fetches the source
here instead, exports it without `.git`, and the final image's build receives
only those files, as its context's `sifu/` folder. The token never reaches the
engine, so no layer, history, build cache or container can hold it, and this
works with any engine and client (no BuildKit, no buildx).

The token reaches git through the environment only: a credential helper given
with `-c` prints it from a variable with the shell's builtin `printf`, so it is
in no process's arguments, no URL and no file. The user's own credential
helpers are switched off for that one command, so none of them stores it.
Without a token, the user's git is used as it is (credential helper, SSH key).

The ref is resolved with `git ls-remote` on every build: a branch that moved
upstream gives another commit, another folder under `.devstack/sifu/`, another
build context hash, and the final image is rebuilt. An unchanged commit reuses
its folder without fetching again. When the host cannot be reached (a laptop
offline), the commit last resolved for the same SIFU_REPO and SIFU_REF is used,
and the caller is told that it may be behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigError, FetchError
from .hosts import is_loopback, url_host
from .redact import Redactor
from .settings import Settings
from .spec import ImageSpec
from .state import ensure_state_dir

# Where the fetched source goes in the final image's build context (the Dockerfile COPYs sifu/).
CONTEXT_FOLDER = "sifu"
CACHE_FOLDER = "sifu"  # under .devstack/

# The variables the credential helper reads. printf is a shell builtin: no process's argv shows the token.
TOKEN_VARIABLE = "DEVSTACK_SIFU_TOKEN"
USERNAME_VARIABLE = "DEVSTACK_SIFU_USERNAME"
CREDENTIAL_HELPER = (f'!f() {{ if [ "$1" = get ]; then printf "username=%s\\npassword=%s\\n" '
                     f'"${USERNAME_VARIABLE}" "${TOKEN_VARIABLE}"; fi; }}; f')
# GitHub takes any user name with an access token; this is the one its own docs use.
DEFAULT_USERNAME = "x-access-token"

# Access tokens GitHub issues (classic, fine-grained, OAuth, app), for spotting one pasted into a URL.
_TOKEN_LIKE = re.compile(r"^(gh[pousr]_[A-Za-z0-9_]{20,}|github_pat_[A-Za-z0-9_]{20,}|[0-9a-f]{40})$")
_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/\s]+)@)?(?P<host>[A-Za-z0-9.-]+):(?!//)(?P<path>\S+)$")
_HEX = re.compile(r"^[0-9a-fA-F]{4,40}$")
# What a ref name may hold (git check-ref-format, loosely); never an option (a leading '-').
_REF_NAME = re.compile(r"^(?!-)(?!.*\.\.)[^\s~^:?*\[\\]+$")


@dataclass(frozen=True)
class GitTimeouts:
    """Bounds on every git command, so that an unreachable host is an error, not a hang."""

    query: float = 60.0  # ls-remote, rev-parse and friends
    fetch: float = 600.0  # the fetch itself (a large repository on a slow link)
    # Below this many bytes per second for low_speed_time seconds, git gives up (http.lowSpeed*).
    low_speed_limit: int = 1000
    low_speed_time: int = 20


@dataclass(frozen=True)
class RepoURL:
    url: str  # what git is given: never a password in it
    shown: str  # what messages show: no user information at all
    kind: str  # http, ssh or file
    host: str = ""
    scheme: str = ""
    username: str = ""

    @property
    def origin(self) -> str:
        """scheme://host[:port], the scope of the credential helper (a redirect elsewhere gets nothing)."""
        parts = urlsplit(self.url)
        host = url_host(parts.hostname or "")
        return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"


@dataclass(frozen=True)
class RemoteListing:
    """What `git ls-remote --symref` says: ref name -> object, and where HEAD points."""

    refs: dict[str, str] = field(default_factory=dict)
    head_target: str = ""


@dataclass(frozen=True)
class ResolvedRef:
    label: str  # for people: "main (default branch)", "tag v1", "commit 1a2b3c4"
    want: str  # what to ask the server for: a ref name or a commit id
    commit: str  # the full commit id, when the listing tells it ("" for an abbreviated commit)


@dataclass(frozen=True)
class SifuSource:
    repo: str  # shown form of SIFU_REPO (no credentials)
    ref: str
    commit: str
    folder: Path
    fetched: bool  # False: the folder of this commit was reused
    offline: str = ""  # why the ref could not be checked upstream; the last resolved commit is used

    def describe(self) -> str:
        return f"{self.repo} at {self.ref}, commit {self.commit[:12]}"


# -- pure parts ------------------------------------------------------------


def parse_repo_url(value: str, project_dir: Path, source: str = "SIFU_REPO") -> RepoURL:
    """Check SIFU_REPO and say how git will reach it. A password or token in the URL is refused:
    the URL is shown and passed to git as an argument, the token must be neither."""
    value = value.strip()
    where = f"SIFU_REPO ({source})" if source else "SIFU_REPO"
    if value.startswith("-"):
        raise ConfigError(f"{where}: {value!r} is not a git URL: use https://host/owner/repo.git")
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise ConfigError(f"{where}: {_strip_userinfo(value)} has no host: "
                              "use https://host/owner/repo.git")
        if parts.password is not None or (parts.username and _TOKEN_LIKE.match(parts.username)):
            raise ConfigError(
                f"{where}: the URL carries a token or password: remove it from the URL "
                f"({_strip_userinfo(value)}) and set DEPLOYMENT_TOKEN instead, which devstack never "
                "puts in a URL, an argument or a file")
        url = value
        return RepoURL(url, _strip_userinfo(value), "http", parts.hostname, scheme, parts.username or "")
    if scheme in ("ssh", "git+ssh"):
        return RepoURL(value, _strip_userinfo(value), "ssh", parts.hostname or "", scheme)
    if scheme == "file":
        return RepoURL(value, value, "file")
    if not scheme or (len(scheme) == 1 and value[1:2] == ":"):
        scp = _SCP_LIKE.match(value)
        if scp and "/" not in value.split(":", 1)[0]:
            return RepoURL(value, f"{scp['host']}:{scp['path']}", "ssh", scp["host"])
        if value.startswith(("/", "./", "../", "~")):
            path = Path(value).expanduser()
            path = path if path.is_absolute() else (project_dir / path).resolve()
            return RepoURL(str(path), str(path), "file")
    raise ConfigError(f"{where}: {_strip_userinfo(value)!r} is not a git URL devstack can fetch: "
                      "use https://host/owner/repo.git (or an SSH URL, or a local path)")


def _strip_userinfo(value: str) -> str:
    parts = urlsplit(value)
    if not parts.scheme or "@" not in parts.netloc:
        return value
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def parse_ls_remote(output: str) -> RemoteListing:
    refs: dict[str, str] = {}
    head_target = ""
    for line in output.splitlines():
        left, _, name = line.partition("\t")
        if not name:
            continue
        if left.startswith("ref: "):
            if name == "HEAD":
                head_target = left.removeprefix("ref: ").strip()
            continue
        refs[name.strip()] = left.strip()
    return RemoteListing(refs, head_target)


def resolve_ref(listing: RemoteListing, ref: str) -> ResolvedRef | None:
    """SIFU_REF as git clone --branch reads it: a branch, then a tag; else a commit id. None: no such ref."""
    ref = ref.strip()
    refs = listing.refs
    if not ref or ref == "HEAD":
        if "HEAD" not in refs:
            return None
        branch = listing.head_target.removeprefix("refs/heads/")
        label = f"{branch} (default branch)" if branch else "HEAD (default branch)"
        return ResolvedRef(label, listing.head_target or "HEAD", refs["HEAD"])
    candidates = [ref] if ref.startswith("refs/") else [f"refs/heads/{ref}", f"refs/tags/{ref}"]
    for name in candidates:
        if name in refs:
            # An annotated tag names a tag object; its `^{}` line names the commit.
            commit = refs.get(f"{name}^{{}}", refs[name])
            kind = "tag " if name.startswith("refs/tags/") else ""
            return ResolvedRef(f"{kind}{ref}", name, commit)
    if _HEX.match(ref):
        wanted = ref.lower()
        tips = {sha for sha in refs.values() if sha.startswith(wanted)}
        full = wanted if len(wanted) == 40 else (tips.pop() if len(tips) == 1 else "")
        return ResolvedRef(f"commit {ref[:12]}", full or wanted, full)
    return None


def classify_git_failure(stderr: str) -> str:
    """Why git failed, from what it printed: credentials, auth, not-found, unreachable, host-key, tls or other."""
    text = stderr.lower()
    if any(s in text for s in ("could not read username", "could not read password", "terminal prompts disabled",
                               "no such device or address")):
        return "credentials"
    if any(s in text for s in ("authentication failed", "invalid username or password", "access denied",
                               "permission denied (publickey", "returned error: 401", "returned error: 403",
                               "write access to repository not granted", "bad credentials")):
        return "auth"
    if "host key verification failed" in text:
        return "host-key"
    if any(s in text for s in ("not found", "does not appear to be a git repository", "returned error: 404",
                               "does not exist", "no such repository")):
        return "not-found"
    if any(s in text for s in ("could not resolve host", "could not resolve hostname", "failed to connect",
                               "couldn't connect", "connection refused", "connection timed out",
                               "operation timed out", "operation too slow", "network is unreachable",
                               "no route to host", "connection reset", "empty reply from server",
                               "name or service not known", "temporary failure in name resolution")):
        return "unreachable"
    if any(s in text for s in ("ssl certificate problem", "certificate verify failed",
                               "server certificate verification failed", "ssl_connect")):
        return "tls"
    return "other"


def last_git_line(stderr: str, limit: int = 200) -> str:
    """The line that says what went wrong: git's last `fatal:`/`error:` line, or its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return "no message"
    chosen = next((line for line in reversed(lines) if line.startswith(("fatal:", "error:"))), lines[-1])
    for prefix in ("fatal: ", "error: "):
        chosen = chosen.removeprefix(prefix)
    return chosen[:limit]


def explain_git_failure(category: str, detail: str, repo: RepoURL, token_source: str) -> str:
    """One line naming SIFU_REPO, what went wrong and what to do. `detail` must be redacted already."""
    name = f"SIFU_REPO={repo.shown}"
    token = f"DEPLOYMENT_TOKEN (from {token_source})" if token_source else ""
    if category == "credentials":
        return (f"{name}: the repository needs credentials and none were given: set DEPLOYMENT_TOKEN (in the "
                "environment, .env, or a .deployment_token file in the project) to a token that can read it, "
                "or give your git access to it (a credential helper, or an SSH URL)")
    if category == "auth":
        if repo.kind == "ssh":
            return (f"{name}: authentication failed: the host refused your SSH key ({detail}); add a key that can "
                    "read the repository to your ssh-agent, or use its https URL with DEPLOYMENT_TOKEN")
        if token:
            return (f"{name}: authentication failed with {token}: check that the token is current and can "
                    "read this repository")
        return (f"{name}: authentication failed with the credentials your git has for this host ({detail}): "
                "fix them, or set DEPLOYMENT_TOKEN to a token that can read the repository")
    if category == "not-found":
        who = f"that {token} can read it" if token else "that you have access to it"
        return (f"{name}: repository not found: check the URL, and {who} (GitHub answers 'not found' "
                "to a token that cannot see a private repository)")
    if category == "host-key":
        return (f"{name}: the host's SSH key is not in your known_hosts: connect once with ssh "
                f"(ssh -T {repo.host or 'the host'}) to check and accept it, then run again")
    if category == "unreachable":
        return f"{name}: cannot reach the repository's host ({detail}): check the URL and your network or proxy"
    if category == "tls":
        return (f"{name}: the host's TLS certificate is not trusted ({detail}): fix the host's certificate "
                "or your CA bundle")
    return f"{name}: git failed: {detail}"


def with_sifu_source(image: ImageSpec, folder: Path) -> ImageSpec:
    """The final image's spec with the fetched source in place of the context's sifu/ folder."""
    kept = tuple(o for o in image.overlays if o[0].strip("/") != CONTEXT_FOLDER)
    return replace(image, overlays=(*kept, (CONTEXT_FOLDER, folder)))


# -- running git -----------------------------------------------------------


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: str
    stderr: str


_NOT_INHERITED = frozenset({
    "GIT_CURL_VERBOSE", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_PREFIX",
})


class Git:
    """git for one repository: token in the environment only, prompts off, every command bounded."""

    def __init__(self, repo: RepoURL, token: str, redact: Callable[[str], str], token_source: str = "",
                 environ: Mapping[str, str] | None = None, timeouts: GitTimeouts = GitTimeouts()):
        self.repo = repo
        self.redact = redact
        self.token_source = token_source if token else ""
        self.timeouts = timeouts
        self.env = self._environment(os.environ if environ is None else environ, token)
        self.config = [
            "-c", f"http.lowSpeedLimit={timeouts.low_speed_limit}",
            "-c", f"http.lowSpeedTime={timeouts.low_speed_time}",
        ]
        if token:
            # Empty first: no helper of the user's is asked, and none is told to store the token.
            self.config += ["-c", "credential.helper=", "-c", f"credential.{repo.origin}.helper={CREDENTIAL_HELPER}"]

    def _environment(self, environ: Mapping[str, str], token: str) -> dict[str, str]:
        # Tracing could write request headers to a file: the token must outlive this command nowhere.
        # A repository named by the environment (devstack run from a git hook) must not be the one written to.
        env = {k: v for k, v in environ.items()
               if not k.startswith("GIT_TRACE") and k not in _NOT_INHERITED}
        env.update({
            "GIT_TERMINAL_PROMPT": "0",  # a missing credential is an error, never a prompt
            "GCM_INTERACTIVE": "never",  # nor a Git Credential Manager window
            "LC_ALL": "C",  # git's messages in English: they are classified below
        })
        env.pop("LANGUAGE", None)
        if token:
            env[TOKEN_VARIABLE] = token
            env[USERNAME_VARIABLE] = self.repo.username or DEFAULT_USERNAME
        return env

    def run(self, args: list[str], cwd: Path, timeout: float, check: bool = True) -> GitResult:
        """Run git; on failure (check) raise a FetchError that names SIFU_REPO and why, redacted."""
        verb = args[0]
        try:
            # A session of its own: no terminal to prompt on (ssh too), and the whole group is killed on timeout.
            process = subprocess.Popen(["git", *self.config, *args], cwd=cwd, env=self.env, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except FileNotFoundError:
            raise FetchError(missing_git_message(), "missing-git") from None
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise FetchError(f"SIFU_REPO={self.repo.shown}: git {verb} got no answer within {timeout:.0f} s: "
                             "check the URL and your network or proxy", "timeout") from None
        except BaseException:
            _kill_group(process)
            raise
        result = GitResult(process.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))
        if check and result.returncode != 0:
            raise self.failure(result)
        return result

    def failure(self, result: GitResult) -> FetchError:
        stderr = self.redact(result.stderr)
        category = classify_git_failure(stderr)
        message = explain_git_failure(category, last_git_line(stderr), self.repo, self.token_source)
        return FetchError(self.redact(message), category)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate()


def missing_git_message() -> str:
    return ("SIFU_REPO is set and fetching it needs git, which is not installed (not on PATH): install git "
            "(Debian/Ubuntu: apt-get install git; macOS: xcode-select --install), or unset SIFU_REPO to use "
            "the development stand-in")


# -- fetching --------------------------------------------------------------


def fetch_sifu_source(settings: Settings, redact: Callable[[str], str] | None = None,
                      environ: Mapping[str, str] | None = None, timeouts: GitTimeouts = GitTimeouts()) -> SifuSource:
    """Resolve SIFU_REF, and fetch that commit into `.devstack/sifu/<commit>/` unless it is there already."""
    if shutil.which("git", path=(environ or os.environ).get("PATH")) is None:
        raise FetchError(missing_git_message(), "missing-git")
    token = settings.deployment_token.get_secret_value()
    redactor = Redactor([token])
    clean = (lambda text: redactor(redact(text))) if redact else redactor
    repo = parse_repo_url(settings.sifu_repo, settings.project_dir, settings.sources.get("SIFU_REPO", ""))
    if repo.kind != "http":
        token = ""  # SSH and local paths: the user's own keys and permissions
    if token and repo.scheme == "http" and not is_loopback(repo.host):
        raise ConfigError(f"SIFU_REPO={repo.shown}: plain http would send DEPLOYMENT_TOKEN across the network "
                          "unencrypted: use the repository's https URL")
    git = Git(repo, token, clean, settings.sources.get("DEPLOYMENT_TOKEN", ""), environ, timeouts)

    ensure_state_dir(settings.state_dir)
    cache = settings.state_dir / CACHE_FOLDER
    cache.mkdir(exist_ok=True)
    _remove_stale_work(cache)
    work = Path(tempfile.mkdtemp(prefix=".fetch-", dir=cache))
    try:
        repo_dir = work / "repo"
        git.run(["init", "--quiet", str(repo_dir)], cwd=work, timeout=timeouts.query)
        try:
            listing = parse_ls_remote(git.run(["ls-remote", "--symref", "--", repo.url], cwd=repo_dir,
                                              timeout=timeouts.query).stdout)
        except FetchError as error:
            cached = _last_resolved(cache, repo.shown, settings.sifu_ref)
            if error.category not in _OFFLINE or cached is None:
                raise
            return replace(cached, offline=str(error))
        resolved = resolve_ref(listing, settings.sifu_ref)
        if resolved is None or not _REF_NAME.match(resolved.want):
            raise ConfigError(f"SIFU_REF={settings.sifu_ref!r} ({settings.sources.get('SIFU_REF', 'default')}): "
                              f"no branch, tag or commit of that name in SIFU_REPO={repo.shown}: "
                              "set it to one that exists, or leave it empty for the default branch")
        if resolved.commit and (cache / resolved.commit).is_dir():
            source = SifuSource(repo.shown, resolved.label, resolved.commit, cache / resolved.commit, fetched=False)
            _remember(cache, source, settings.sifu_ref)
            return source
        commit = _fetch_commit(git, repo, repo_dir, resolved, settings)
        target = cache / commit
        if not target.is_dir():
            tree = work / "tree"
            git.run(["read-tree", commit], cwd=repo_dir, timeout=timeouts.query)
            git.run(["checkout-index", "--all", "--force", f"--prefix={tree}/"], cwd=repo_dir, timeout=timeouts.fetch)
            tree.mkdir(exist_ok=True)  # an empty repository still gives a folder
            os.replace(tree, target)
        _prune(cache, keep=commit)
        source = SifuSource(repo.shown, resolved.label, commit, target, fetched=True)
        _remember(cache, source, settings.sifu_ref)
        return source
    finally:
        shutil.rmtree(work, ignore_errors=True)


# Failures that say nothing about the repository, only that it cannot be reached from here now.
_OFFLINE = ("unreachable", "timeout")
_LAST = "last-resolved.json"


def _remember(cache: Path, source: SifuSource, ref_setting: str) -> None:
    record = {"repo": source.repo, "ref_setting": ref_setting, "ref": source.ref, "commit": source.commit}
    partial = cache / f".{_LAST}.tmp"
    partial.write_text(json.dumps(record))
    os.replace(partial, cache / _LAST)


def _last_resolved(cache: Path, repo_shown: str, ref_setting: str) -> SifuSource | None:
    """The commit last resolved for this very SIFU_REPO and SIFU_REF, if its files are still here."""
    try:
        record = json.loads((cache / _LAST).read_text())
        if (record["repo"], record["ref_setting"]) != (repo_shown, ref_setting):
            return None
        folder = cache / record["commit"]
        if not folder.is_dir():
            return None
        return SifuSource(repo_shown, record["ref"], record["commit"], folder, fetched=False)
    except (OSError, ValueError, KeyError, TypeError):
        return None


_FETCHED = "refs/devstack/sifu"


def _fetch_commit(git: Git, repo: RepoURL, repo_dir: Path, resolved: ResolvedRef, settings: Settings) -> str:
    """Fetch just the wanted commit (shallow); when the server refuses that (an unadvertised or abbreviated
    commit, a server without shallow support), fetch the branches and tags and look for it there."""
    timeout = git.timeouts.fetch
    if resolved.commit:
        shallow = git.run(["fetch", "--quiet", "--no-tags", "--depth", "1", "--", repo.url,
                           f"+{resolved.want}:{_FETCHED}"], cwd=repo_dir, timeout=timeout, check=False)
        if shallow.returncode == 0:
            return _commit_of(git, repo_dir, _FETCHED)
        error = git.failure(shallow)
        if error.category != "other":
            raise error
    refspecs = ["+refs/heads/*:refs/remotes/sifu/*", "+refs/tags/*:refs/tags/*"]
    if not _HEX.match(resolved.want):
        refspecs.append(f"+{resolved.want}:{_FETCHED}")
    git.run(["fetch", "--quiet", "--", repo.url, *refspecs], cwd=repo_dir, timeout=timeout)
    target = _FETCHED if not _HEX.match(resolved.want) else resolved.want
    found = git.run(["rev-parse", "--verify", "--quiet", f"{target}^{{commit}}"], cwd=repo_dir,
                    timeout=git.timeouts.query, check=False)
    if found.returncode != 0:
        raise ConfigError(f"SIFU_REF={settings.sifu_ref!r} ({settings.sources.get('SIFU_REF', 'default')}): "
                          f"no commit {resolved.want} on the branches or tags of SIFU_REPO={repo.shown}: "
                          "set it to a commit that exists")
    return found.stdout.strip()


def _commit_of(git: Git, repo_dir: Path, ref: str) -> str:
    return git.run(["rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=repo_dir, timeout=git.timeouts.query).stdout.strip()


def _prune(cache: Path, keep: str) -> None:
    """Only the commit in use is kept: the cache is a copy of a repository, not an archive of it."""
    for entry in cache.iterdir():
        if entry.is_dir() and entry.name != keep and re.fullmatch(r"[0-9a-f]{40,64}", entry.name):
            shutil.rmtree(entry, ignore_errors=True)


def _remove_stale_work(cache: Path, older_than: float = 3600.0) -> None:
    """Work folders of a fetch that was killed (they hold no secret, only objects): cleaned up later."""
    now = time.time()
    for entry in cache.glob(".fetch-*"):
        try:
            if now - entry.stat().st_mtime > older_than:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass
