"""What a batch of changed paths means: a pure function from paths to a `ChangePlan`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..docker import context as build_context
from ..docker.engine import dockerignore_excludes
from ..noise import is_config_noise, is_noise
from ..settings import ENV_FILE, Settings
from ..spec import StackSpec


@dataclass(frozen=True)
class ImageContext:
    image: str  # "base" or "notebook"
    folder: Path
    dockerignore: tuple[str, ...]  # its .dockerignore patterns, read when the targets were made
    reads: Callable[[str], bool] = lambda rel: True  # whether the build reads that file (ImageSpec.reads)


@dataclass(frozen=True)
class WatchTargets:
    """What devstack watches, and what each place means."""

    env_file: Path
    # The project's other files that make the settings or the container (overrides.yml, .ebextensions'
    # options, Dockerrun.aws.json): resolved again as .env is.
    settings_files: tuple[Path, ...]
    # Every folder proxy configuration comes from, existing or not: devstack's templates and the
    # project's own EB folders (.ebextensions/.nginx/..., .platform/nginx/...).
    proxy_sources: tuple[Path, ...]
    contexts: tuple[ImageContext, ...]  # base first
    sifu_src: Path | None
    ignored_dirs: tuple[Path, ...]  # the notebooks folder and devstack's own .devstack/

    def roots(self) -> list[tuple[Path, bool]]:
        """(folder, recursive) to schedule, for the folders that exist now; a folder inside another
        recursive one is not scheduled twice. A proxy folder that does not exist yet is watched for
        through its nearest existing parent inside the project, so that creating it is seen."""
        project = self.env_file.parent
        wanted = [*self.proxy_sources, *(c.folder for c in self.contexts)]
        if self.sifu_src is not None:
            wanted.append(self.sifu_src)
        unique: list[Path] = []
        for folder in sorted({f for f in wanted if f.is_dir()}, key=lambda p: len(p.parts)):
            if not any(_inside(folder, kept) for kept in unique):
                unique.append(folder)
        flat = {project}
        for folder in self.proxy_sources:
            if not folder.is_dir():
                parent = next((p for p in folder.parents if p.is_dir()), None)
                if parent is not None and _inside(parent, project):
                    flat.add(parent)
        roots = [(folder, False) for folder in sorted(flat) if not any(_inside(folder, kept) for kept in unique)]
        return roots + [(folder, True) for folder in unique]


def watch_targets(settings: Settings, spec: StackSpec) -> WatchTargets:
    contexts = tuple(
        # The Dockerfile and .dockerignore are always sent, whatever .dockerignore says.
        ImageContext(image.name, image.context,
                     (*build_context.read_dockerignore(image.context), f"!{image.dockerfile}", "!.dockerignore"),
                     image.reads)
        for image in spec.images if image.context.is_dir())
    ignored = [spec.state_dir]
    if spec.notebooks_dir is not None:
        ignored.append(spec.notebooks_dir)
    return WatchTargets(
        env_file=settings.project_dir / ENV_FILE,
        settings_files=project_settings_files(settings.project_dir) if spec.app.own else (),
        proxy_sources=(spec.proxy.server_templates, *spec.proxy.sources),
        contexts=contexts,
        sifu_src=settings.sifu_src_path,
        ignored_dirs=tuple(ignored),
    )


def project_settings_files(project_dir: Path) -> tuple[Path, ...]:
    """Files (and the .ebextensions folder, for its *.config) whose save resolves the stack again."""
    return (project_dir / "overrides.yml", project_dir / "Dockerrun.aws.json", project_dir / ".ebextensions")


@dataclass(frozen=True)
class ChangePlan:
    """What a batch of changed files means, by kind; each kind lists the files (as shown)."""

    settings: tuple[str, ...] = ()
    proxy: tuple[str, ...] = ()
    base: tuple[str, ...] = ()
    notebook: tuple[str, ...] = ()
    sifu: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.settings or self.proxy or self.base or self.notebook or self.sifu)

    @property
    def images(self) -> tuple[str, ...]:
        """Images to bring up to date: a new base means a new final image too."""
        if self.base:
            return ("base", "notebook")
        return ("notebook",) if self.notebook else ()

    def steps(self) -> list[str]:
        """The actions, in the order they are applied, in words. (A recreate of the notebook container
        also restarts Sifu, so the applier then skips the Sifu restart.)"""
        steps = []
        if self.settings:
            steps.append("resolve the settings again and recreate only the containers whose spec changed")
        if self.base:
            steps.append("rebuild base, then notebook, and recreate the notebook container")
        elif self.notebook:
            steps.append("rebuild notebook and recreate the notebook container")
        if self.proxy:
            steps.append("check the proxy configuration with nginx -t and reload nginx (no restart)")
        if self.sifu:
            steps.append("restart Sifu in the notebook container (supervisorctl; kernels untouched)")
        return steps

    def changed_files(self) -> list[str]:
        seen: dict[str, None] = {}
        for files in (self.settings, self.base, self.notebook, self.proxy, self.sifu):
            seen.update(dict.fromkeys(files))
        return list(seen)

    def describe(self) -> str:
        files = self.changed_files()
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        return f"changed {shown}: " + "; ".join(self.steps())


def classify(paths: Iterable[str], targets: WatchTargets) -> ChangePlan:
    """Map changed paths to what they mean. Pure: paths are compared, never read."""
    kinds: dict[str, list[str]] = {"settings": [], "proxy": [], "base": [], "notebook": [], "sifu": [],
                                   "ignored": []}
    project = targets.env_file.parent

    def shown(folder: Path, rel: str) -> str:
        """As the user knows the file: from the project folder, or from the folder's name outside it."""
        return (folder / rel).relative_to(project).as_posix() if _inside(folder, project) else f"{folder.name}/{rel}"

    for raw in paths:
        path = Path(raw)
        matched = False
        if not any(_inside(path, folder) for folder in targets.ignored_dirs):
            if path == targets.env_file:
                kinds["settings"].append(ENV_FILE)
                matched = True
            elif path in targets.settings_files or (path.suffix == ".config" and path.parent in targets.settings_files):
                kinds["settings"].append(path.relative_to(project).as_posix())
                matched = True
            for folder in targets.proxy_sources:
                rel = _relevant(path, folder, is_config_noise)  # what the renderer and the EB reader skip
                if rel is not None:
                    kinds["proxy"].append(shown(folder, rel))
                    matched = True
                if path in folder.parents and _inside(path, project) and not is_noise(path.name):
                    # A folder on the way to a proxy folder came or went (`mkdir -p .platform/nginx/conf.d`).
                    kinds["proxy"].append(path.relative_to(project).as_posix())
                    matched = True
            if targets.sifu_src is not None:
                rel = _relevant(path, targets.sifu_src)
                if rel is not None:
                    kinds["sifu"].append(shown(targets.sifu_src, rel))
                    matched = True
            for ctx in targets.contexts:
                rel = _relevant(path, ctx.folder)
                if rel is not None and ctx.reads(rel) and not dockerignore_excludes(list(ctx.dockerignore), rel):
                    kinds[ctx.image].append(shown(ctx.folder, rel))
                    matched = True
        if not matched:
            kinds["ignored"].append(raw)
    return ChangePlan(**{kind: tuple(dict.fromkeys(files)) for kind, files in kinds.items()})


def _relevant(path: Path, folder: Path, noise: Callable[[str], bool] = is_noise) -> str | None:
    """The path relative to `folder` when it is inside it and not noise."""
    if not _inside(path, folder) or path == folder:
        return None
    rel = path.relative_to(folder).as_posix()
    return None if noise(rel) else rel


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents
