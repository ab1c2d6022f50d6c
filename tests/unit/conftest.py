"""What the unit tests share: a project folder with its own name and ports (no engine behind it)."""

import pytest


@pytest.fixture
def project(tmp_path):
    """A project folder named demo, its .env giving ports no other test binds."""
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / ".env").write_text("DEVSTACK_PROJECT=demo\nSIFU_PORT=43334\nJUPYTER_PORT=43335\n")
    return folder
