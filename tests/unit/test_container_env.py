"""What of `.env` reaches the notebook container: the user's own variables, never devstack's settings."""

from __future__ import annotations

from devstack.settings import load_settings
from devstack.spec import load_stack


def notebook_of(folder, env_text: str, flags=None):
    (folder / ".env").write_text(env_text)
    settings = load_settings(folder, flags=flags or {}, environ={})
    return load_stack(settings, (1000, 1000)).service("notebook")


def test_user_variables_reach_the_container_and_devstack_settings_do_not(tmp_path):
    notebook = notebook_of(tmp_path, "SIFU_PORT=4000\nKERNEL_IDLE_WAIT=5\nFEATURE_FLAG=on\nDEPLOYMENT_TOKEN=ghp_x\n",
                           flags={"SIFU_PORT": "6000"})
    environment = dict(notebook.environment)
    assert environment["FEATURE_FLAG"] == "on"
    for key in ("SIFU_PORT", "KERNEL_IDLE_WAIT", "DEPLOYMENT_TOKEN"):
        assert key not in environment, key
    # devstack's own variables tell the container the port the flag chose, not the .env line.
    assert environment["SIFU_PUBLIC_PORT"] == "6000"


def test_changing_kernel_idle_wait_does_not_recreate_the_notebook(tmp_path):
    before = notebook_of(tmp_path, "KERNEL_IDLE_WAIT=60\n")
    after = notebook_of(tmp_path, "KERNEL_IDLE_WAIT=5\n")
    assert before.config_hash("sha256:image") == after.config_hash("sha256:image")
    changed = notebook_of(tmp_path, "KERNEL_IDLE_WAIT=5\nFEATURE_FLAG=on\n")
    assert changed.config_hash("sha256:image") != before.config_hash("sha256:image")
