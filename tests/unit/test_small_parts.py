import importlib.util
import io
import tarfile

from devstack import assets
from devstack.docker.context import context_digest, context_files, context_tar
from devstack.reconcile.plan import image_hash
from devstack.cookie import sign_cookie
from devstack.redact import MASK, Redactor
from devstack.spec import ImageSpec


def load_image_cookie_module():
    path = assets.compose_dir() / "notebook" / "lib" / "sifu_cookie.py"
    spec = importlib.util.spec_from_file_location("sifu_cookie", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_host_signed_cookie_verifies_in_the_image_and_back():
    image_side = load_image_cookie_module()
    assert image_side.verify("s3cret", sign_cookie("s3cret", "probe")) == "probe"
    assert image_side.verify("other", sign_cookie("s3cret", "probe")) is None
    assert sign_cookie("s3cret", "dev", issued_at=5) == image_side.sign("s3cret", "dev", issued_at=5)
    assert image_side.verify("s3cret", "v1.dev.5.00") is None
    assert image_side.verify("s3cret", None) is None


def test_redactor_masks_secrets_credentials_and_tokens():
    redact = Redactor(["ghp_abcdef123"])
    text = redact("clone https://x-access-token:ghp_abcdef123@github.com/o/r.git and /tree?token=abc&x=1 "
                  "Authorization: token zzz")
    assert "ghp_abcdef123" not in text and "abc&" not in text and "zzz" not in text
    assert f"https://{MASK}@github.com" in text and f"?token={MASK}&x=1" in text


def test_bundled_assets_are_found():
    assert (assets.compose_dir() / "base" / "Dockerfile").is_file()
    assert (assets.compose_dir() / "notebook" / "Dockerfile").is_file()
    assert (assets.nginx_dir() / "nginx.conf.j2").is_file()


def test_context_follows_dockerignore_and_hash_follows_content(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "app.py").write_text("print(1)\n")
    (tmp_path / "notes.swp").write_text("x")
    (tmp_path / ".dockerignore").write_text("*.swp\n")
    image = ImageSpec("notebook", "t", tmp_path)
    assert [f.arcname for f in context_files(image)] == [".dockerignore", "Dockerfile", "app.py"]
    first = context_digest(image)
    (tmp_path / "notes.swp").write_text("changed")  # ignored: no rebuild
    assert context_digest(image) == first
    (tmp_path / "app.py").write_text("print(2)\n")
    assert context_digest(image) != first
    assert context_digest(image) != context_digest(ImageSpec("notebook", "t", tmp_path, build_args=(("A", "1"),)))
    # The parent image's ID is part of the image's hash: a rebuilt base means a rebuilt final image.
    assert image_hash(context_digest(image), "sha256:a") != image_hash(context_digest(image), "sha256:b")
    # The exec bit alone, same image and arguments: a script that loses +x must be rebuilt.
    (tmp_path / "app.py").chmod(0o644)
    before_chmod = context_digest(image)
    (tmp_path / "app.py").chmod(0o755)
    assert context_digest(image) != before_chmod


def test_overlay_replaces_a_folder_of_the_context(tmp_path):
    context = tmp_path / "ctx"
    (context / "sifu").mkdir(parents=True)
    (context / "Dockerfile").write_text("FROM scratch\n")
    (context / "sifu" / "standin.py").write_text("standin")
    source = tmp_path / "real-sifu"
    (source / ".git").mkdir(parents=True)
    (source / ".git" / "config").write_text("[remote] url=https://token@host")
    (source / "app.py").write_text("real")
    image = ImageSpec("notebook", "t", context, overlays=(("sifu", source),))
    with context_tar(image) as handle:
        names = tarfile.open(fileobj=io.BytesIO(handle.read())).getnames()
    assert names == ["Dockerfile", "sifu/app.py"]


def test_labels_travel_as_one_instruction_appended_to_the_dockerfile_sent(tmp_path):
    from devstack.docker.context import labels_fit_in_dockerfile

    (tmp_path / "Dockerfile").write_text("FROM scratch\nCMD [\"x\"]")
    image = ImageSpec("notebook", "t", tmp_path)
    with context_tar(image, labels={"devstack.image": "notebook", "devstack.context-hash": "abc"}) as handle:
        sent = tarfile.open(fileobj=io.BytesIO(handle.read())).extractfile("Dockerfile").read().decode()
    assert sent == 'FROM scratch\nCMD ["x"]\nLABEL "devstack.context-hash"="abc" "devstack.image"="notebook"\n'
    assert (tmp_path / "Dockerfile").read_text() == "FROM scratch\nCMD [\"x\"]"  # the user's file is untouched
    assert labels_fit_in_dockerfile(tmp_path / "Dockerfile")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nRUN true \\\n")
    assert not labels_fit_in_dockerfile(tmp_path / "Dockerfile")
