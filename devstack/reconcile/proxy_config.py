"""Loading a proxy configuration: render for the notebook's address, stage it as a generation,
check it with the real `nginx -t`, swap it in, reload nginx. A configuration nginx rejects never
replaces the one being served."""

from __future__ import annotations

from typing import Any

from ..docker.engine import ContainerInfo, ContainerShell, Engine
from ..errors import EngineError, ProxyConfigError
from ..events import Notify, ProxyLoaded
from ..proxy.render import (RELOAD_AND_WAIT, ProxyConfigStore, RenderedProxy, explain_nginx_error,
                            render_proxy_config)
from ..spec import LABEL_SERVICE, StackSpec, link_loaded_config, proxy_prepare
from ..state import ensure_state_dir


class ProxyLoader:
    """Loads configurations into one instance's sidecar (the stack's only one, by default), through a
    shell kept open there."""

    def __init__(self, engine: Engine, spec: StackSpec, notify: Notify, proxy: str = "proxy"):
        self.engine = engine
        self.spec = spec
        self.notify = notify
        self.proxy_service = proxy  # the sidecar's service name: "proxy", or "proxy-K" with several instances
        self.store = ProxyConfigStore(self.proxy_spec.config_dir)
        self.address = ""  # the notebook address the last configuration this loader checked was for
        # (the sidecar's ID and start time, a shell open in it): a restart ends the shell, so it keys it too.
        self._shell: tuple[tuple[str, Any], ContainerShell] | None = None

    @property
    def proxy_spec(self):  # noqa: ANN201 - ProxySpec: this instance's (its own configuration folder)
        instance = self.spec.instance(self.spec.service(self.proxy_service).name)
        return instance.proxy_spec if instance is not None else self.spec.proxy

    def load(self, address: str) -> bool:
        """Render for the notebook at `address`; if that changes what is served, check and load it.
        Returns whether anything changed."""
        if not address:
            raise EngineError("the notebook container is not running or has no address, so the proxy has no "
                              "upstream: run `devstack up`")
        rendered = render_proxy_config(self.proxy_spec, address)
        served = self.store.current_files()
        if served == rendered.files:
            self.address = address
            return False
        ensure_state_dir(self.spec.state_dir)
        generation = self.store.stage(rendered)
        proxy_spec = self.spec.service(self.proxy_service)
        proxy = self.engine.container(proxy_spec.container_name)
        if proxy is not None and proxy.running and self._runs_image(proxy, proxy_spec.image):
            code, output = self._in_proxy(proxy, ["nginx", "-t", "-c", self.store.container_path(generation)])
            if code != 0:
                self.store.discard(generation)
                raise ProxyConfigError("nginx rejected the new proxy configuration, the running one is kept: "
                                       + self._explain(output, generation, rendered))
            self.store.activate(generation)
            if _top_level(rendered.files) != _top_level(served or {}):
                # An entry the sidecar has no link for yet (or one gone): link the loaded tree again.
                code, output = self._in_proxy(proxy, ["sh", "-c", link_loaded_config(self.proxy_spec.flavor)])
                if code != 0:
                    raise ProxyConfigError(f"could not link {generation} where nginx reads it: {output.strip()}")
            # SIGHUP to nginx's master: re-read the configuration, no dropped connections; done when
            # no worker of the old configuration accepts connections any more.
            code, output = self._in_proxy(proxy, ["sh", "-c", RELOAD_AND_WAIT])
            if code == 3:
                raise ProxyConfigError(f"nginx was told to load {generation} but its old workers still accept "
                                       f"connections after 5 s ({output.strip()}): see `devstack logs proxy`")
            if code != 0:
                self.engine.signal(proxy.id, proxy.name, "SIGHUP")
            self.address = address
            self.notify(ProxyLoaded(f"{self._whose}configuration {generation} checked and reloaded "
                                    f"(notebook at {address})", proxy_spec.name, generation))
            return True
        # No sidecar to ask yet (or one of another image, which the plan replaces: the flavour changed):
        # the nginx that will serve it checks it in a throwaway container of its image, so that a
        # configuration nginx rejects is never the one the sidecar starts with.
        check = f"{proxy_prepare(self.proxy_spec.flavor)} && exec nginx -t -c {self.store.container_path(generation)}"
        code, output = self.engine.run_once(proxy_spec.image, ["/bin/sh", "-c"], [check], proxy_spec.mounts,
                                            {**self.spec.labels, LABEL_SERVICE: "proxy-check"})
        if code != 0:
            self.store.discard(generation)
            raise ProxyConfigError("nginx rejected the proxy configuration, so the proxy was not started: "
                                   + self._explain(output, generation, rendered))
        self.store.activate(generation)
        self.address = address
        self.notify(ProxyLoaded(f"{self._whose}configuration {generation} checked and written (notebook at {address})",
                                proxy_spec.name, generation))
        return True

    @property
    def _whose(self) -> str:
        name = self.spec.service(self.proxy_service).name
        return "proxy " if name == "proxy" else f"{name}: proxy "

    def _runs_image(self, proxy: ContainerInfo, image: str) -> bool:
        found = self.engine.image(image)
        return found is not None and found.id == proxy.image_id

    def _explain(self, output: str, generation: str, rendered: RenderedProxy) -> str:
        return explain_nginx_error(output, generation, rendered, self.proxy_spec.flavor.conf_dir)

    def close(self) -> None:
        """End the shell kept open in the sidecar (its `sh` ends with its input)."""
        if self._shell is not None:
            self._shell[1].close()
            self._shell = None

    def _in_proxy(self, proxy: ContainerInfo, argv: list[str]) -> tuple[int, str]:
        """Run a command in the sidecar through a shell kept open there (watching reloads often);
        a plain exec when that shell cannot be had."""
        shell = self._shell
        key = (proxy.id, proxy.started_at)
        if shell is None or shell[0] != key:
            if shell is not None:
                shell[1].close()
            try:
                self._shell = shell = (key, self.engine.open_shell(proxy.id, proxy.name))
            except EngineError:
                self._shell = None
                return self.engine.exec(proxy.id, argv)
        try:
            return shell[1].run(argv)
        except (OSError, ValueError):
            shell[1].close()
            self._shell = None
            return self.engine.exec(proxy.id, argv)


def _top_level(files: dict[str, str]) -> set[str]:
    """The entries of a configuration tree's root (nginx.conf, conf.d, sites-enabled ...)."""
    return {rel.split("/", 1)[0] for rel in files}
