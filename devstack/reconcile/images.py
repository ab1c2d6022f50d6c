"""The images devstack builds: made ready on the host (Sifu fetched, contexts checked), hashed, built."""

from __future__ import annotations

from dataclasses import replace

from ..docker import context as build_context
from ..docker.engine import BuildEvent, Engine
from ..errors import ConfigError
from ..events import BuildOutput, ImageBuilt, Info, Notify, Warned
from ..redact import Redactor
from ..settings import DEPLOYMENT_TOKEN_FILE, Settings
from ..sifu import fetch_sifu_source, with_sifu_source
from ..spec import LABEL_CONTEXT_HASH, LABEL_IMAGE, ImageSpec, StackSpec
from ..state import load_secrets

# The setting that names each image's build context, for errors.
CONTEXT_SETTING = {"base": "BASE_CONTEXT", "notebook": "NOTEBOOK_CONTEXT"}


def prepare_images(spec: StackSpec, settings: Settings, notify: Notify, redact: Redactor) -> tuple[ImageSpec, ...]:
    """The images to build, their contexts checked; with SIFU_REPO set, the final one gets Sifu's source
    fetched on the host. The fetch comes first, so a fetch that fails leaves every image and container
    as it was."""
    images = spec.images
    if settings.sifu_repo:
        source = fetch_sifu_source(settings, redact)
        if source.offline:
            notify(Warned(redact(f"Sifu: {source.offline}. Building from {source.describe()}, the last commit "
                                 "resolved for this SIFU_REF; it may be behind upstream until the host answers "
                                 "again"), "notebook"))
        else:
            how = "fetched on the host" if source.fetched else "unchanged since the last fetch"
            notify(Info(redact(f"Sifu: SIFU_REPO={source.describe()}, {how} (only its files go into the build)"),
                        "notebook"))
        images = tuple(with_sifu_source(image, source.folder) if image.name == "notebook" else image
                       for image in images)
    if spec.app.own:
        images = tuple(blank_deployment_token(image, settings, notify) for image in images)
    for image in images:
        build_context.check_context(image, CONTEXT_SETTING.get(image.name, image.name))
    return images


def blank_deployment_token(image: ImageSpec, settings: Settings, notify: Notify) -> ImageSpec:
    """The project's Dockerfiles COPY production's `.deployment_token` (the hook writes DEPLOYMENT_TOKEN
    there): such a file is sent empty, so that the token reaches no layer, and the build goes on."""
    token = {"DEPLOYMENT_TOKEN": settings.deployment_token.get_secret_value()}
    holding = {item.arcname for item, _ in build_context.files_holding_secrets(image, token)}
    holding |= {item.arcname for item in build_context.context_files(image)
                if item.arcname.rsplit("/", 1)[-1] == DEPLOYMENT_TOKEN_FILE}
    for arcname in sorted(holding):
        copied_at = _copied_at(image, arcname)
        if copied_at is None:
            continue  # in the context, but no instruction puts it in a layer: sent empty all the same
        notify(Warned(f"{copied_at}: this instruction would put DEPLOYMENT_TOKEN ({arcname}) in an image layer; "
                      f"devstack sends {arcname} empty and builds on. To use the token without a layer, mount it "
                      "as a BuildKit secret (`RUN --mount=type=secret,id=deployment_token ...`), or fetch Sifu "
                      "on the host and set SIFU_SRC", image.name))
    return replace(image, blanked=tuple(sorted(holding))) if holding else image


def _copied_at(image: ImageSpec, arcname: str) -> str | None:
    """The Dockerfile line (file:line) that COPYs or ADDs `arcname`, or the whole context; None if none does."""
    dockerfile = image.context / image.dockerfile
    try:
        lines = dockerfile.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for number, line in enumerate(lines, 1):
        words = line.split()
        sources = [w.removeprefix("./").rstrip("/") for w in words[1:-1] if not w.startswith("--")]
        if words and words[0].upper() in ("COPY", "ADD") and (arcname in sources or "." in sources or "" in sources):
            return f"{dockerfile}:{number}"
    return None


def context_digests(images: tuple[ImageSpec, ...]) -> dict[str, str]:
    return {image.name: build_context.context_digest(image) for image in images}


def refuse_secrets_in_context(image: ImageSpec, settings: Settings) -> None:
    """A build context holding a secret (a `.deployment_token` copied along, say) would put it in the
    image or at least hand it to the engine: stop, and say which file."""
    secrets = {"DEPLOYMENT_TOKEN": settings.deployment_token.get_secret_value(),
               "JUPYTER_TOKEN": settings.jupyter_token.get_secret_value()}
    generated = load_secrets(settings)
    if generated is not None:
        secrets.update({"the generated Jupyter token": generated.jupyter_token,
                        "the Sifu cookie secret": generated.sifu_secret})
    found = next(((item, secret) for item, secret in build_context.files_holding_secrets(image, secrets)
                  if item.arcname not in image.blanked), None)
    if found is not None:
        item, secret = found
        raise ConfigError(f"{item.path} holds {secret} and is in the build context of the {image.name} image "
                          f"(as {item.arcname}): devstack never sends a secret into a build; move that file "
                          "out of the context, or list it in the context's .dockerignore")


def build_image(engine: Engine, image: ImageSpec, context_hash: str, no_cache: bool, notify: Notify,
                redact: Redactor) -> str:
    """Build one image with its labels; returns its ID. Build output reaches `notify` line by line."""
    labels = {LABEL_IMAGE: image.name, LABEL_CONTEXT_HASH: context_hash}

    def on_event(event: BuildEvent) -> None:
        notify(BuildOutput(redact(event.line), image.name, event.step, event.total, redact(event.instruction)))

    if build_context.labels_fit_in_dockerfile(image.context / image.dockerfile):
        in_dockerfile, by_api = labels, {}
    else:
        in_dockerfile, by_api = {}, labels
    with build_context.context_tar(image, labels=in_dockerfile) as tar:
        image_id = engine.build(tar, image.tag, dict(image.build_args), by_api, no_cache, on_event,
                                network=image.network)
    notify(ImageBuilt(f"built {image.tag} ({image_id.removeprefix('sha256:')[:12]})", image.name, image_id))
    return image_id
