"""`tollway dev` reloads its routes when a file under the infra folder changes.

The served app is a `ReloadingApp`: it passes each request to the current gateway, and
watches the infra folder's files (their size and modification time, twice a second). When
they change and then hold still for one look, the folder is compiled again, off the event
loop: if it has problems, each is printed as FILE:LINE and the last good gateway keeps
serving; if not, a new gateway is built on the new table (plans, issuers, services and all),
started, and put in front. The one it replaces finishes what it is answering: it is shut
down (its last usage flush, its connections) after the longest deadline of its routes.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tollway.config.compile import compile_infra
from tollway.config.errors import ConfigError
from tollway.http.app import GatewayApp
from tollway.table.routes import CompiledConfig

WATCHED = {".yaml", ".yml", ".json", ".proto"}  # what the loader reads; not an editor's swap files
POLL_S = 0.5

Snapshot = dict[Path, tuple[int, int]]


def snapshot(infra: Path) -> Snapshot:
    out: Snapshot = {}
    for path in infra.rglob("*"):
        if path.suffix in WATCHED and not path.name.startswith("."):
            try:
                stat = path.stat()
            except OSError:  # removed while we looked
                continue
            out[path] = (stat.st_mtime_ns, stat.st_size)
    return out


def changed_files(before: Snapshot, after: Snapshot, infra: Path) -> list[str]:
    paths = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    return sorted(str(p.relative_to(infra)) for p in paths)


class ReloadingApp:
    def __init__(
        self,
        app: GatewayApp,
        build: Callable[[CompiledConfig], GatewayApp],
        infra: Path,
        stage: str,
        environ: dict[str, str],
        *,
        say: Callable[[str], None],
        poll_s: float = POLL_S,
    ) -> None:
        self.current = app
        self.build = build
        self.infra = infra
        self.stage = stage
        self.environ = environ
        self.say = say
        self.poll_s = poll_s
        self._watcher: asyncio.Task | None = None
        self._retiring: set[asyncio.Task] = set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:
            await self.current(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await _start(self.current)
                self._watcher = asyncio.create_task(self._watch())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._watcher is not None:
                    self._watcher.cancel()
                for task in list(self._retiring):  # a replaced gateway: stop it now, not later
                    task.cancel()
                await asyncio.gather(*self._retiring, return_exceptions=True)
                await _stop(self.current)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _watch(self) -> None:
        seen = snapshot(self.infra)
        while True:
            await asyncio.sleep(self.poll_s)
            now = snapshot(self.infra)
            if now == seen:
                continue
            await asyncio.sleep(self.poll_s)  # an editor may write in several steps
            settled = snapshot(self.infra)
            if settled != now:
                continue  # look again next time, once it holds still
            files, seen = changed_files(seen, settled, self.infra), settled
            try:
                await self.reload(files)
            except Exception as exc:  # noqa: BLE001 - the dev server keeps serving the last good routes
                why = f"{type(exc).__name__}: {exc}".splitlines()[0]
                self.say(f"could not reload ({why}); still serving the last good routes")

    async def reload(self, files: list[str]) -> bool:
        """Compile and swap in a new gateway; False (problems printed) when the folder is broken."""
        what = ", ".join(files) or str(self.infra)
        try:
            config = await asyncio.to_thread(compile_infra, self.infra, self.stage, self.environ)
        except ConfigError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr, flush=True)
            self.say(f"{what} changed: {len(exc.problems)} problem(s); still serving the last good routes")
            return False
        app = await asyncio.to_thread(self.build, config)
        await _start(app)
        old, self.current = self.current, app
        self.say(f"{what} changed: reloaded {len(config.routes)} route(s)")
        task = asyncio.create_task(self._retire(old))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        return True

    async def _retire(self, app: GatewayApp) -> None:
        """Once every request the old gateway took has passed its deadline, shut it down."""
        longest = max((route.timeout_s for route in app.gateway.config.routes), default=0.0)
        try:
            await asyncio.sleep(longest + 1)
        finally:
            await _stop(app)


async def _start(app: GatewayApp) -> None:
    for hook in app.on_startup:
        await hook()


async def _stop(app: GatewayApp) -> None:
    for hook in app.on_shutdown:
        await hook()
