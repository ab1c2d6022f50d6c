"""Benchmark 2: a saved change to the final image's Dockerfile -> the notebook healthy through the proxy.

devstack: the Dockerfile saved while `devstack watch` runs (quiet period, build, recreate,
upstreams rewritten, nginx reloaded, probes). Baseline, in the same run, on a second stack: the
same change applied by hand with the docker CLI: `docker build` (classic builder, as devstack
uses), `docker rm -f`, `docker run` with the same options, then what EB's hook does (the new IP
into the upstream file, `nginx -s reload`). Both clocks stop when Sifu, Jupyter's gate and
Jupyter with the cookie all answer through the proxy from the new container. Each run adds a
new `RUN` line (a real build step, the same on both sides).

    .venv/bin/python bench/final_rebuild.py [--runs 5]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
import uuid
from pathlib import Path

from _common import BASE_TAG, docker, make_project, median, report, stack_answers, wait_until


def add_step(dockerfile: Path, original: str, nonce: str) -> None:
    dockerfile.write_text(original + f"RUN echo bench-{nonce} > /etc/devstack-bench\n")


def run_args(project) -> list[str]:  # noqa: ANN001
    """`docker run` options for the notebook container, read from devstack's own description of it."""
    from devstack.settings import load_settings
    from devstack.spec import load_stack

    settings = load_settings(project.dir, environ={})
    spec = load_stack(settings)
    service = spec.service("notebook")
    args = ["--name", service.container_name, "--network", spec.network.name, "--network-alias", "notebook"]
    for mount in service.mounts:
        args += ["-v", f"{mount.source}:{mount.target}{':ro' if mount.read_only else ''}"]
    for key, value in service.environment:
        args += ["-e", f"{key}={value}"]
    for host, target in service.extra_hosts:
        args += ["--add-host", f"{host}:{target}"]
    for key, value in service.labels:
        args += ["--label", f"{key}={value}"]
    return args


def by_hand(project, context: Path, tag: str) -> None:  # noqa: ANN001
    name = f"{project.name}-notebook"
    docker("build", "-t", tag, "--build-arg", f"BASE_IMAGE={BASE_TAG}", str(context))
    docker("rm", "-f", name)
    docker("run", "-d", *run_args(project), tag)
    ip = docker("inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{project.name}_default").IPAddress}}}}',
                name).strip()
    upstreams = project.dir / ".devstack" / "proxy" / "current" / "conf.d" / "upstreams.conf"
    upstreams.write_text(re.sub(r"server [0-9.]+:", f"server {ip}:", upstreams.read_text()))
    docker("exec", f"{project.name}-proxy", "nginx", "-s", "reload")


_client = None


def notebook_id(project) -> str:  # noqa: ANN001
    """Through the Engine API, not the CLI: polling must not cost a process every time."""
    global _client
    import docker as sdk

    _client = _client or sdk.from_env()
    try:
        return _client.api.inspect_container(f"{project.name}-notebook")["Id"]
    except sdk.errors.NotFound:
        return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="devstack-bench-"))
    watched, manual = make_project(root, "dsw"), make_project(root, "hand")
    contexts = {p.name: p.own_notebook_context() for p in (watched, manual)}
    originals = {name: (ctx / "Dockerfile").read_text() for name, ctx in contexts.items()}
    for project in (watched, manual):
        project.run("up", "-d")
    watch = watched.start("watch")
    devstack, hand, built = [], [], set()
    try:
        watch.wait_for_line("watching ")
        for run in range(args.runs):
            nonce = uuid.uuid4().hex

            def with_devstack() -> None:
                before = notebook_id(watched)
                mark = watch.mark()
                start = time.perf_counter()
                add_step(contexts[watched.name] / "Dockerfile", originals[watched.name], nonce)
                wait_until(lambda: notebook_id(watched) not in ("", before) and stack_answers(watched),
                           timeout=600, interval=0.1, what="devstack's rebuild")
                devstack.append(time.perf_counter() - start)
                print(f"  run {run}: {watch.wait_for_line('applied:', after=mark)}", flush=True)
                built.add(docker("inspect", "-f", "{{.Image}}", f"{watched.name}-notebook").strip())

            def with_docker_cli() -> None:
                before = notebook_id(manual)
                start = time.perf_counter()
                add_step(contexts[manual.name] / "Dockerfile", originals[manual.name], nonce)
                by_hand(manual, contexts[manual.name], manual.image_tags[0])
                wait_until(lambda: notebook_id(manual) not in ("", before) and stack_answers(manual),
                           timeout=600, interval=0.1, what="the rebuild by hand")
                hand.append(time.perf_counter() - start)
                built.add(docker("inspect", "-f", "{{.Image}}", f"{manual.name}-notebook").strip())

            # Alternate which side goes first, so that neither always follows the other's load.
            for side in ((with_devstack, with_docker_cli) if run % 2 == 0 else (with_docker_cli, with_devstack)):
                side()
                time.sleep(5)
            print(f"  run {run}: devstack {devstack[-1]:.2f} s, by hand {hand[-1]:.2f} s", flush=True)
    finally:
        watch.stop()
        for project in (watched, manual):
            project.down()
        for image_id in built:  # what the rebuilds left untagged
            docker("rmi", image_id, check=False)
    overhead = median(devstack) / median(hand) - 1
    report("final_rebuild", "Benchmark 2: final Dockerfile saved -> notebook healthy through the proxy", [
        ("devstack watch", devstack, "s"),
        ("baseline: docker build, rm, run, upstream + reload by hand", hand, "s"),
    ], {"overhead": f"{overhead * 100:+.1f} %", "target": "overhead <= 10 %", "target_met": overhead <= 0.10},
        command=f"python bench/final_rebuild.py --runs {args.runs}")


if __name__ == "__main__":
    main()
