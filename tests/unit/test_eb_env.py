"""EB's environment properties: the layers, `launch`'s `{{ KEY }}`, and the files EB skips or launch refuses."""

from __future__ import annotations

import pytest

from devstack.errors import ConfigError
from devstack.settings import load_settings
from devstack.spec import load_stack
from devstack.spec.eb_env import EbSources, ebextensions_properties, overrides_properties, resolve_environment
from devstack.spec.project import docker_envs_text

MAPPING_FORM = """\
option_settings:
  aws:elasticbeanstalk:application:environment:
    RDS_DB_NAME: from_ebextensions
    ONLY_EBEXT: one
    EB_REGION: eu-west-1
  aws:autoscaling:asg:
    MinSize: 2
"""

LIST_FORM = """\
option_settings:
  - namespace: aws:elasticbeanstalk:application:environment
    option_name: ONLY_EBEXT
    value: two
  - option_name: NO_NAMESPACE
    value: yes
  - namespace: aws:autoscaling:asg
    option_name: MaxSize
    value: 4
"""

OVERRIDES = """\
# EFS CONFIG
EFS_MOUNT_POINT: /root/efs-mount-point
EDX_HOSTNAME:
EDX_OAUTH2_FORCE_SSL: false
RDS_DB_NAME: production
RDS_PORT: 3306
EB_REGION: 'us-west-2'
EB_DNS: '{{ EB_REGION }}.elasticbeanstalk.com'
EB_HOSTNAME: 'prov-docker{{EB_DNS}}'
"""


def resolve(tmp_path, files: dict[str, str], dotenv: str = "", environ=None, flags=None):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / ".env").write_text(dotenv)
    settings = load_settings(tmp_path, flags=flags or {}, environ=environ or {})
    return load_stack(settings, (1000, 1000))


def notebook_env(spec) -> dict[str, str]:
    return dict(spec.service("notebook").environment)


def test_layers_weakest_first(tmp_path):
    spec = resolve(tmp_path, {
        ".ebextensions/10_list.config": LIST_FORM,
        ".ebextensions/02_mapping.config": MAPPING_FORM,
        "overrides.yml": "EB_REGION: us-east-1\nFROM_ENV: overrides\nFROM_FLAG: overrides\nFROM_DOTENV: overrides\n",
    }, dotenv="FROM_DOTENV=dotenv\nFROM_ENV=dotenv\n",
        environ={"FROM_ENV": "environment", "PATH": "/usr/bin", "FROM_FLAG": "environment"},
        flags={"FROM_FLAG": "flag"})
    env = notebook_env(spec)
    # .ebextensions in alphabetical order (02 before 10: the later file wins), both forms, other namespaces ignored.
    assert env["ONLY_EBEXT"] == "two" and env["NO_NAMESPACE"] == "true"
    assert "MinSize" not in env and "MaxSize" not in env
    assert env["RDS_DB_NAME"] == "from_ebextensions"
    # overrides.yml beats .ebextensions; .env beats overrides.yml; the environment beats .env; --set beats all.
    assert env["EB_REGION"] == "us-east-1"
    assert env["FROM_DOTENV"] == "dotenv"
    assert env["FROM_ENV"] == "environment"
    assert env["FROM_FLAG"] == "flag"
    # The environment overrides what a layer names, and adds nothing of its own.
    assert "PATH" not in env
    sources = spec.environment
    assert sources.source("ONLY_EBEXT").endswith("10_list.config:3")
    assert sources.source("EB_REGION").endswith("overrides.yml:1")
    assert sources.source("FROM_ENV") == "environment" and sources.source("FROM_FLAG") == "flag --set"


def test_overrides_resolve_earlier_keys_as_launch_does(tmp_path):
    props = overrides_properties("overrides.yml", OVERRIDES)
    assert props["EB_DNS"].value == "us-west-2.elasticbeanstalk.com"
    assert props["EB_HOSTNAME"].value == "prov-dockerus-west-2.elasticbeanstalk.com"
    # launch writes Ruby's to_s: null is empty, booleans lowercase, numbers as written.
    assert props["EDX_HOSTNAME"].value == "" and props["EDX_OAUTH2_FORCE_SSL"].value == "false"
    assert props["RDS_PORT"].value == "3306"
    assert props["EB_HOSTNAME"].source == "overrides.yml:9"


def test_devstack_settings_and_secrets_never_become_properties(tmp_path):
    spec = resolve(tmp_path, {"overrides.yml": "EDX_HOSTNAME: edx.example.org:80\nDEPLOYMENT_TOKEN: ghp_0123456789\n"
                                               "JUPYTER_TOKEN: jt-0123456789\nSIFU_PORT: 9999\nKEPT: yes\n"})
    env = notebook_env(spec)
    for key in ("EDX_HOSTNAME", "DEPLOYMENT_TOKEN", "JUPYTER_TOKEN", "SIFU_PORT"):
        assert key not in spec.environment.properties, key
    assert env["KEPT"] == "true"
    assert env["EDX_ORIGIN"] == "http://localhost:8000"  # devstack's own EDX_HOSTNAME, not production's
    text = docker_envs_text({**env, "DEPLOYMENT_TOKEN": "ghp_0123456789", "JUPYTER_TOKEN": "jt-0123456789"})
    assert "export KEPT=true" in text
    assert "ghp_" not in text and "jt-" not in text


@pytest.mark.parametrize("text, where, what", [
    ("A: one\nB: '{{ NOPE }}'\n", "overrides.yml:2", "{{ NOPE }}, which no earlier key"),
    ("B: '{{ A }}'\nA: one\n", "overrides.yml:1", "define A above B"),
    ("A: 'x {{ A'\n", "overrides.yml:1", "without a closing"),
    ("A: one\nB: [unclosed\n", "overrides.yml:3", "not YAML"),
    ("- A\n- B\n", "overrides.yml:1", "not a mapping"),
    ("A:\n  nested: 1\n", "overrides.yml:1", "A is a mapping"),
])
def test_bad_overrides_name_the_file_line_and_fix(text, where, what):
    with pytest.raises(ConfigError) as error:
        overrides_properties("overrides.yml", text)
    message = str(error.value)
    assert message.startswith(where) and what in message
    assert "\n" not in message


def test_an_ebextensions_file_that_is_not_yaml_is_skipped_with_a_warning(tmp_path):
    spec = resolve(tmp_path, {".ebextensions/01_broken.config": "option_settings:\n  - option_name: X\n    value: [1\n",
                              ".ebextensions/02_ok.config": MAPPING_FORM})
    [warning] = spec.environment.warnings
    assert "01_broken.config:4" in warning and "EB skips this file" in warning
    assert notebook_env(spec)["ONLY_EBEXT"] == "one"  # the other files still count
    assert "X" not in notebook_env(spec)


def test_an_option_eb_would_refuse_is_skipped_and_named():
    found, warning = ebextensions_properties("e.config", "option_settings:\n  aws:elasticbeanstalk:application:"
                                                         "environment:\n    GOOD: 1\n    BAD: [1, 2]\n")
    assert found["GOOD"].value == "1" and "BAD" not in found
    assert "BAD (line 4)" in warning


def test_a_set_flag_needs_a_setting_or_a_property(tmp_path):
    (tmp_path / "overrides.yml").write_text("RDS_PASSWORD: from-file\n")
    spec = resolve(tmp_path, {}, flags={"RDS_PASSWORD": "from-flag"})
    assert notebook_env(spec)["RDS_PASSWORD"] == "from-flag"
    with pytest.raises(ConfigError, match="--set TYPO_KEY: unknown setting"):
        resolve(tmp_path, {}, flags={"TYPO_KEY": "1"})


def test_resolution_is_pure():
    sources = EbSources((("a.config", MAPPING_FORM),), ("overrides.yml", "EB_REGION: x\n"))
    first = resolve_environment(sources, {}, {}, ".env", {}, {}, ["SIFU_PORT"])
    assert first == resolve_environment(sources, {}, {}, ".env", {}, {}, ["SIFU_PORT"])
    assert first.values()["EB_REGION"] == "x"


def test_a_property_named_as_a_devstack_setting_is_shadowed_unless_env_sets_it():
    sources = EbSources(overrides=("overrides.yml", "EDX_HOSTNAME: lms.example.com\nOTHER: 1\n"))
    shadowed = resolve_environment(sources, {}, {}, ".env", {}, {}, ["EDX_HOSTNAME"]).shadowed
    assert {key: (p.value, p.source) for key, p in shadowed.items()} == {
        "EDX_HOSTNAME": ("lms.example.com", "overrides.yml:1")}
    # Set by the user for devstack (.env, the environment, --set): devstack's own value, nothing to say.
    for dotenv, environ, flags in (({"EDX_HOSTNAME": "x:1"}, {}, {}), ({}, {"EDX_HOSTNAME": "x:1"}, {}),
                                   ({}, {}, {"EDX_HOSTNAME": "x:1"})):
        assert not resolve_environment(sources, dotenv, {}, ".env", environ, flags, ["EDX_HOSTNAME"]).shadowed
