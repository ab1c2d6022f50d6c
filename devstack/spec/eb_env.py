"""EB's environment properties, as the notebook container gets them (EB's `docker run --env`).

Weakest first: `option_settings` of `aws:elasticbeanstalk:application:environment` in
`.ebextensions/*.config` (the files in alphabetical order, as EB reads them; a later file wins),
`overrides.yml` (what the project's `launch` script sends with `eb setenv`, which beats the
`.ebextensions` defaults on EB too), then `.env`, the environment and `--set`, as devstack's
settings are layered. The environment and `--set` override a property that a weaker layer names;
they add none of their own (the shell's PATH is not the notebook's).

Pure: the files come in as text (`read_eb_sources` in project.py reads them at the edge).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

import yaml

from ..errors import ConfigError
from .options import ENVIRONMENT_NAMESPACE, OptionSetting, option_settings

OVERRIDES_FILE = "overrides.yml"
# What EB would accept as a variable name, and what a shell can `export`.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A property whose value is a secret: masked by `config`, redacted from every line devstack prints.
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE_KEY|ACCESS_KEY", re.IGNORECASE)
# `launch` replaces the first `{{ ... }}` of a value with the earlier key it names, until none is left.
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


@dataclass(frozen=True)
class Property:
    """One environment property and where its value came from ("overrides.yml:5", ".env:3", ...)."""

    value: str
    source: str


@dataclass(frozen=True)
class EbSources:
    """The text of the files EB reads for the environment: (path as shown, text) each."""

    ebextensions: tuple[tuple[str, str], ...] = ()  # `.ebextensions/*.config`, alphabetical
    overrides: tuple[str, str] | None = None  # `overrides.yml`, when the project has one


@dataclass(frozen=True)
class EbEnvironment:
    """The resolved properties, strongest layer applied last, and the warnings reading them gave."""

    properties: Mapping[str, Property] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    # What the project's files (.ebextensions, overrides.yml) set under the name of one of devstack's own
    # settings, left unset by .env, the environment and --set: devstack's value is used instead.
    shadowed: Mapping[str, Property] = field(default_factory=dict)

    def values(self) -> dict[str, str]:
        return {key: prop.value for key, prop in self.properties.items()}

    def get(self, key: str) -> str:
        prop = self.properties.get(key)
        return prop.value if prop is not None else ""

    def source(self, key: str) -> str:
        prop = self.properties.get(key)
        return prop.source if prop is not None else ""

    def secret_values(self) -> list[str]:
        return [prop.value for key, prop in self.properties.items() if is_secret_name(key) and prop.value]


def is_secret_name(key: str) -> bool:
    return bool(_SECRET_NAME.search(key))


def resolve_environment(
    sources: EbSources,
    dotenv: Mapping[str, str],
    dotenv_lines: Mapping[str, int],
    dotenv_path: str,
    environ: Mapping[str, str],
    flags: Mapping[str, str],
    setting_keys: Iterable[str],
) -> EbEnvironment:
    """Every layer, weakest first. devstack's own settings are never properties (they configure devstack,
    and DEPLOYMENT_TOKEN and JUPYTER_TOKEN are secrets the container never gets as variables). A `--set`
    of a key that is neither a setting nor a property of any layer is refused: it is most likely a typo."""
    own = set(setting_keys)
    warnings: list[str] = []
    layered: dict[str, Property] = {}
    for path, text in sources.ebextensions:
        found, warning = ebextensions_properties(path, text)
        if warning:
            warnings.append(warning)
        layered.update(found)
    if sources.overrides is not None:
        layered.update(overrides_properties(*sources.overrides))
    shadowed = {key: prop for key, prop in layered.items()
                if key in own and key not in dotenv and key not in environ and key not in flags}
    for key, value in dotenv.items():
        layered[key] = Property(value, f"{dotenv_path}:{dotenv_lines.get(key, 0)}")
    for key in list(layered):
        if key in environ:
            layered[key] = Property(environ[key], "environment")
    for key, value in flags.items():
        if key not in layered and key not in own:
            raise ConfigError(f"--set {key}: unknown setting, and no environment property of the project "
                              f"(.ebextensions option_settings, {OVERRIDES_FILE}, .env) names it: check the "
                              f"spelling; known settings: {', '.join(sorted(own))}")
        layered[key] = Property(value, "flag --set")
    properties = {key: prop for key, prop in layered.items() if key not in own}
    return EbEnvironment(properties, tuple(warnings), shadowed)


# -- .ebextensions ---------------------------------------------------------------------------


def ebextensions_properties(path: str, text: str) -> tuple[dict[str, Property], str]:
    """The environment properties one `.ebextensions` config file sets, and a warning when EB would skip
    the file (it is not YAML) or an option of it. Both EB forms of `option_settings`: the mapping
    (`namespace: {NAME: value}`) and the list (`- namespace: ..., option_name: NAME, value: ...`;
    a list entry without a namespace is an environment property, as EB reads it)."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        line = _error_line(exc)
        where = f"{path}:{line}" if line else path
        return {}, (f"{where}: not YAML ({_problem(exc)}): EB skips this file with a warning, and so does "
                    "devstack; fix its YAML to have its option_settings and hooks used")
    if not isinstance(root, yaml.MappingNode):
        return {}, ""
    found: dict[str, Property] = {}
    skipped: list[str] = []
    for setting in option_settings(root):
        if setting.namespace == ENVIRONMENT_NAMESPACE:
            _take(path, setting, found, skipped)
    warning = (f"{path}: EB refuses {', '.join(skipped)} (not a NAME: value environment property); "
               "devstack skips them too") if skipped else ""
    return found, warning


def _take(path: str, setting: OptionSetting, found: dict[str, Property], skipped: list[str]) -> None:
    name, value = setting.option, setting.value_node
    if not _NAME.match(name) or (value is not None and not isinstance(value, yaml.ScalarNode)):
        skipped.append(f"{name or '?'} (line {setting.line})")
        return
    found[name] = Property(_scalar_text(value), f"{path}:{setting.line}")


# -- overrides.yml ---------------------------------------------------------------------------


def overrides_properties(path: str, text: str) -> dict[str, Property]:
    """`overrides.yml` as the repository's `launch` script reads it: a YAML mapping of KEY: value, in file
    order; in a string value, each `{{ KEY }}` is replaced by the value of an earlier key of the file.
    A file that is not YAML, not a mapping, or that names nothing in `{{ }}` stops with one line naming
    the file, the line and the fix (launch itself would crash)."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            pairs = [] if root is None else _overrides_pairs(path, loader, root)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        line = _error_line(exc)
        where = f"{path}:{line}" if line else path
        raise ConfigError(f"{where}: not YAML ({_problem(exc)}): write one KEY: value per line, as "
                          f"{OVERRIDES_FILE}.template has them, and quote values holding ': ' or '{{{{'") from None
    resolved: dict[str, Property] = {}
    for key, line, value in pairs:
        if isinstance(value, str):
            value = _resolve_placeholders(path, key, line, value, resolved)
        resolved[key] = Property(_as_text(value), f"{path}:{line}")
    return resolved


def _overrides_pairs(path: str, loader: yaml.SafeLoader, root: yaml.Node) -> list[tuple[str, int, object]]:
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(f"{path}:{root.start_mark.line + 1}: not a mapping of KEY: value: write one "
                          f"KEY: value per line, as {OVERRIDES_FILE}.template has them")
    pairs = []
    for key_node, value_node in root.value:
        key = str(loader.construct_object(key_node, deep=True)).strip()
        line = key_node.start_mark.line + 1
        if not _NAME.match(key):
            raise ConfigError(f"{path}:{line}: {key!r} is not an environment variable name: use letters, "
                              "digits and '_', not starting with a digit")
        value = loader.construct_object(value_node, deep=True)
        if isinstance(value, (list, dict)):
            raise ConfigError(f"{path}:{line}: {key} is a {'list' if isinstance(value, list) else 'mapping'}: "
                              "an environment property is one value; write it on the key's line")
        pairs.append((key, line, value))
    return pairs


def _resolve_placeholders(path: str, key: str, line: int, value: str, earlier: Mapping[str, Property]) -> str:
    while "{{" in value:
        match = _PLACEHOLDER.search(value)
        if match is None:
            raise ConfigError(f"{path}:{line}: {key} opens '{{{{' without a closing '}}}}': write "
                              "{{ OTHER_KEY }} to use an earlier key's value")
        name = match[1].strip()
        if name not in earlier:
            raise ConfigError(f"{path}:{line}: {key} refers to {{{{ {name} }}}}, which no earlier key of "
                              f"{OVERRIDES_FILE} names: define {name or 'that key'} above {key} (launch "
                              "resolves only keys written before), or fix the name")
        value = value[:match.start()] + earlier[name].value + value[match.end():]
    return value


# -- YAML helpers ------------------------------------------------------------------------------


def _scalar_text(node: yaml.Node | None) -> str:
    """A scalar's value as EB stores it: its text, YAML's null as empty, booleans as true/false."""
    if node is None:
        return ""
    loader = yaml.SafeLoader("")
    try:
        return _as_text(loader.construct_object(node))
    finally:
        loader.dispose()


def _as_text(value: object) -> str:
    """A YAML value as `launch` writes it into `KEY=value` (Ruby's to_s): null is empty, booleans are
    lowercase."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def _error_line(exc: yaml.YAMLError) -> int:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark is not None else 0


def _problem(exc: yaml.YAMLError) -> str:
    return str(getattr(exc, "problem", None) or exc).strip()
