from pathlib import Path

import pytest

from devstack.errors import ConfigError
from devstack.settings import load_settings, normalize_project_name, setting_keys


def write_env(folder: Path, text: str) -> None:
    (folder / ".env").write_text(text)


def test_defaults(tmp_path):
    settings = load_settings(tmp_path, environ={})
    assert (settings.sifu_port, settings.jupyter_port, settings.bind_address) == (3334, 3335, "127.0.0.1")
    assert settings.notebooks_path == (tmp_path / "notebooks").resolve()
    assert settings.project_name == normalize_project_name(tmp_path.name)
    assert settings.sources["SIFU_PORT"] == "default"


def test_precedence_flag_over_environment_over_env_file(tmp_path):
    write_env(tmp_path, "SIFU_PORT=4000\nJUPYTER_PORT=4001\nBIND_ADDRESS=127.0.0.2\n")
    settings = load_settings(tmp_path, flags={"SIFU_PORT": "6000"}, environ={"SIFU_PORT": "5000", "JUPYTER_PORT": "5001"})
    assert settings.sifu_port == 6000 and settings.sources["SIFU_PORT"] == "flag --set"
    assert settings.jupyter_port == 5001 and settings.sources["JUPYTER_PORT"] == "environment"
    assert settings.bind_address == "127.0.0.2" and settings.sources["BIND_ADDRESS"].endswith(".env:3")


def test_env_file_variables_are_kept_for_the_container(tmp_path):
    write_env(tmp_path, "CUSTOM=1\nDEPLOYMENT_TOKEN=abc123\n")
    settings = load_settings(tmp_path, environ={})
    assert settings.dotenv["CUSTOM"] == "1"
    assert settings.deployment_token.get_secret_value() == "abc123"


@pytest.mark.parametrize("value", ["x", "0", "65536", "-1", "3.5"])
def test_bad_port_names_key_and_line(tmp_path, value):
    write_env(tmp_path, f"# comment\nJUPYTER_PORT={value}\n")
    with pytest.raises(ConfigError) as error:
        load_settings(tmp_path, environ={})
    message = str(error.value)
    assert "JUPYTER_PORT" in message and f"{tmp_path / '.env'}:2" in message
    assert "\n" not in message


def test_equal_ports_are_an_error(tmp_path):
    with pytest.raises(ConfigError, match="SIFU_PORT and JUPYTER_PORT are both 4000"):
        load_settings(tmp_path, environ={"SIFU_PORT": "4000", "JUPYTER_PORT": "4000"})


def test_unparsable_line_names_the_line_but_not_the_value(tmp_path):
    write_env(tmp_path, 'A=1\nDEPLOYMENT_TOKEN="ghp_secretvalue\n')
    with pytest.raises(ConfigError) as error:
        load_settings(tmp_path, environ={})
    assert ":2:" in str(error.value) and "DEPLOYMENT_TOKEN" in str(error.value)
    assert "ghp_secretvalue" not in str(error.value)


def test_invalid_values(tmp_path):
    for key, value in [("BIND_ADDRESS", "localhost"), ("DEVSTACK_PROJECT", "Bad Name"),
                       ("EDX_HOSTNAME", "localhost"), ("NGINX_IMAGE", "Not An Image")]:
        with pytest.raises(ConfigError, match=key):
            load_settings(tmp_path, environ={key: value})


def test_unknown_flag_is_refused(tmp_path):
    # A variable name may be an environment property of the project (spec/eb_env.py): refused once the
    # project's files say it is none; anything else at once.
    from devstack.spec import load_stack

    with pytest.raises(ConfigError, match="--set NOPE: unknown setting"):
        load_stack(load_settings(tmp_path, flags={"NOPE": "1"}, environ={}), (1000, 1000))
    with pytest.raises(ConfigError, match="--set NO-PE: unknown setting"):
        load_settings(tmp_path, flags={"NO-PE": "1"}, environ={})


def test_secrets_are_redacted(tmp_path):
    settings = load_settings(tmp_path, environ={"DEPLOYMENT_TOKEN": "tok-123456", "JUPYTER_TOKEN": "jt-123456"})
    shown = settings.redacted()
    assert "tok-123456" not in str(shown) and "jt-123456" not in str(shown)
    assert load_settings(tmp_path, environ={}).redacted()["JUPYTER_TOKEN"] == "(generated per project)"


def test_every_setting_is_documented_in_env_example():
    example = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    for key in setting_keys():
        assert f"\n{key}=" in example or f"\n# {key}=" in example, f"{key} is not in .env.example"


def test_project_name_from_folder():
    assert normalize_project_name("My Project.v2") == "myprojectv2"
    assert normalize_project_name("__x") == "x"
