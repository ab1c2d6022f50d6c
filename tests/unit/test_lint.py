"""The proxy lint on fixtures in the shape of the project's own EB files (tests/fixtures/)."""

import shutil
from pathlib import Path

import pytest

from devstack.proxy.lint import frame_finding, lint_stack
from devstack.settings import load_settings
from devstack.spec import load_stack

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def project_from(fixture: str, tmp_path: Path, **environ: str) -> tuple:
    folder = tmp_path / fixture
    shutil.copytree(FIXTURES / fixture, folder, symlinks=True)
    settings = load_settings(folder, environ={"EDX_HOSTNAME": "127.0.0.1:8000", **environ})
    return folder, settings, load_stack(settings, (1000, 1000))


def findings_of(fixture: str, tmp_path: Path, **environ: str):
    folder, settings, spec = project_from(fixture, tmp_path, **environ)
    return folder, lint_stack(spec, settings)


def by_code(findings):
    grouped = {}
    for finding in findings:
        grouped.setdefault(finding.code, []).append(finding)
    return grouped


def test_bundled_configuration_is_clean(tmp_path):
    _, findings = findings_of_empty(tmp_path)
    assert findings == []


def findings_of_empty(tmp_path):
    settings = load_settings(tmp_path, environ={"EDX_HOSTNAME": "127.0.0.1:8000"})
    return tmp_path, lint_stack(load_stack(settings, (1000, 1000)), settings)


def test_seed_style_files_warn_about_host_header_and_the_unchecked_host(tmp_path):
    folder, findings = findings_of("eb-al1", tmp_path)
    proxy = folder / ".ebextensions/.nginx/proxy"
    assert {f.code for f in findings} == {"host-header", "host-unchecked"}
    grouped = by_code(findings)
    (header,) = grouped["host-header"]
    assert header.file == proxy / "elasticbeanstalk-nginx-jupyter-proxy.conf"
    assert header.lineno == 31 and "$http_host" in header.fix and header.severity == "warning"
    # Production's servers answer to any Host: a rebinding page's too.
    unchecked = {(f.file.name, f.lineno, f.severity) for f in grouped["host-unchecked"]}
    assert unchecked == {("elasticbeanstalk-nginx-jupyter-proxy.conf", 6, "warning"),
                         ("elasticbeanstalk-nginx-sifu-proxy.conf", 6, "warning")}
    assert all("DNS rebinding" in f.message and "return 421" in f.fix for f in grouped["host-unchecked"])


def test_a_project_server_that_checks_the_host_is_not_flagged(tmp_path):
    folder, settings, _ = project_from("eb-al1", tmp_path, ALLOWED_HOSTS="notebook.local.test")
    sifu = folder / ".ebextensions/.nginx/proxy/elasticbeanstalk-nginx-sifu-proxy.conf"
    (unchecked,) = [f for f in lint_stack(load_stack(settings, (1000, 1000)), settings)
                    if f.code == "host-unchecked" and f.file == sifu]
    assert "notebook\\.local\\.test" in unchecked.fix  # the fix names the stack's own names
    text = sifu.read_text().replace("listen 3334;", 'listen 3334;\n        if ($host !~* "^localhost$") { return 421; }', 1)
    sifu.write_text(text)
    findings = lint_stack(load_stack(settings, (1000, 1000)), settings)
    assert [f.file.name for f in findings if f.code == "host-unchecked"] == ["elasticbeanstalk-nginx-jupyter-proxy.conf"]


def test_swapped_upstream_ports_in_the_unloaded_hosts_file_are_warnings_with_file_and_line(tmp_path):
    folder, findings = findings_of("eb-al1-swapped", tmp_path)
    swapped = by_code(findings)["upstream-port"]
    hosts = folder / ".ebextensions/.nginx/hosts/hosts.conf"
    # Nothing loads hosts.conf (neither devstack nor production's hooks): worth a warning, never an error.
    assert [(f.file, f.lineno, f.severity) for f in swapped] == [(hosts, 2, "warning"), (hosts, 6, "warning")]
    assert "upstream jupyter points at port 3334, which is Sifu's port; Jupyter listens on 3335" in swapped[0].message
    assert "not loaded" in swapped[0].message
    assert swapped[0].fix == "write `server 172.17.0.2:3335;` in upstream jupyter, or remove the file"
    assert f"{hosts}:6: upstream sifu points at port 3335" in swapped[1].describe()


def test_the_same_swap_in_a_loaded_file_is_an_error(tmp_path):
    folder, settings, _ = project_from("eb-al1-swapped", tmp_path)
    hosts = folder / ".ebextensions/.nginx/hosts/hosts.conf"
    loaded = folder / ".platform/nginx/conf.d/hosts.conf"  # AL2 loads conf.d/*.conf in the http block
    loaded.parent.mkdir(parents=True)
    hosts.rename(loaded)
    swapped = by_code(lint_stack(load_stack(settings, (1000, 1000)), settings))["upstream-port"]
    assert [(f.file, f.lineno, f.severity) for f in swapped] == [(loaded, 2, "error"), (loaded, 6, "error")]
    assert "not loaded" not in swapped[0].message


def test_every_mistake_of_the_mistakes_fixture_is_found(tmp_path):
    folder, settings, spec = project_from("lint-mistakes", tmp_path)
    proxy = folder / ".ebextensions/.nginx/proxy"
    (proxy / "gone.conf").symlink_to(folder / "nowhere.conf")
    findings = lint_stack(load_stack(settings, (1000, 1000)), settings)
    found = {(f.code, f.file.name if f.file else None, f.lineno) for f in findings}
    assert found == {
        ("log-format", "sifu.conf", 8),
        ("include-missing", "sifu.conf", 9),
        ("cors-wildcard", "sifu.conf", 12),
        ("route", "sifu.conf", 14),  # listens on Sifu's port, proxies to jupyter
        ("allow-from", "jupyter.conf", 3),
        ("host-header", "jupyter.conf", 10),
        ("host-unchecked", "sifu.conf", 6),
        ("host-unchecked", "jupyter.conf", 1),
        ("unpublished-listen", "jupyter.conf", 15),
        ("dangling-symlink", "gone.conf", None),
    }
    errors = {f.code for f in findings if f.severity == "error"}
    assert errors == {"log-format", "include-missing", "route", "dangling-symlink"}
    assert all(f.fix for f in findings)


def test_a_published_port_nothing_listens_on_is_an_error(tmp_path):
    folder, settings, _ = project_from("eb-al1", tmp_path)
    (folder / ".ebextensions/.nginx/proxy/elasticbeanstalk-nginx-jupyter-proxy.conf").unlink()
    findings = lint_stack(load_stack(settings, (1000, 1000)), settings)
    (missing,) = by_code(findings)["not-served"]
    assert "no server listens on 3335" in missing.message and missing.severity == "error"


def test_host_mode_checks_listen_ports_against_the_host_ports(tmp_path):
    _, findings = findings_of("eb-al1", tmp_path, NETWORK_MODE="host", SIFU_PORT="4334", JUPYTER_PORT="4335")
    codes = by_code(findings)
    assert {f.lineno for f in codes["unpublished-listen"]} == {7}
    assert "4334 (SIFU_PORT)" in codes["unpublished-listen"][0].fix
    assert "not-served" in codes


def test_host_mode_warns_that_a_bare_listen_binds_every_interface(tmp_path):
    _, findings = findings_of("eb-al1", tmp_path, NETWORK_MODE="host")
    wide = by_code(findings)["host-mode-listen"]
    assert sorted(f.fix.split("`")[1] for f in wide) == ["listen 127.0.0.1:3334;", "listen 127.0.0.1:3335;"]


def test_al2_files_are_clean(tmp_path):
    _, findings = findings_of("eb-al2", tmp_path)
    assert findings == []


@pytest.mark.parametrize(("edx", "served", "bind", "warns"), [
    ("localhost", "127.0.0.1", "127.0.0.1", True),
    ("127.0.0.1", "127.0.0.1", "127.0.0.1", False),
    ("edx.example.test", "127.0.0.1", "127.0.0.1", True),
    ("lms.example.test", "nb.example.test", "0.0.0.0", False),
])
def test_frame_site_check(edx, served, bind, warns):
    finding = frame_finding(edx, served, bind, 3334)
    assert (finding is not None) == warns
    if finding is not None and edx == "localhost":
        assert "http://localhost:3334/login" in finding.fix


def test_the_lint_never_reads_what_a_project_file_includes_from_this_machine(tmp_path):
    # Were the include followed, the broken file outside the project would give a syntax finding.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "broken.conf").write_text("this is { not nginx\n")
    folder, settings, _ = project_from("eb-al1", tmp_path)
    proxy = folder / ".ebextensions/.nginx/proxy/elasticbeanstalk-nginx-sifu-proxy.conf"
    proxy.write_text(proxy.read_text() + f"include {outside}/broken.conf;\ninclude /etc/nginx/mime.types;\n")
    findings = lint_stack(load_stack(settings, (1000, 1000)), settings)
    assert "syntax" not in by_code(findings)
    (outside_include,) = by_code(findings)["include-outside"]
    assert outside_include.file == proxy and str(outside) in outside_include.message
