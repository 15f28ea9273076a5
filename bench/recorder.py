"""Batching store calls: the services' stores build every command, pipelines send them.

A store given a `CommandRecorder` instead of a Redis client runs its own code (key names,
arguments, script choice exactly as in production) and the recorder keeps each script
call and command, answering as a successful call would. `replay` then sends the recorded calls to a
real Redis in pipelines: the same keys are written, in a fraction of the round trips.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import redis as redis_py

BATCH = 2000


class RecordedScript:
    """What `register_script` returns: records each call with its keys and arguments."""

    def __init__(self, recorder: CommandRecorder, source: str) -> None:
        self.recorder = recorder
        self.sha = hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()
        recorder.sources[self.sha] = source

    def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        return self.recorder.evalsha(self.sha, len(keys), *keys, *args)


class CommandRecorder:
    """Stands in for a redis client in a store; `reply` is what every call returns."""

    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.calls: list[tuple[Any, ...]] = []
        self.sources: dict[str, str] = {}

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    def execute_command(self, *command: Any) -> Any:
        """The way `shared.redis.command` reaches a client that is not a plain Redis."""
        self.calls.append(command)
        return self.reply

    def register_script(self, source: str) -> RecordedScript:
        return RecordedScript(self, source)


def replay(client: redis_py.Redis, recorder: CommandRecorder) -> None:
    """Send every recorded call to `client` in pipelines; scripts it lacks are loaded first.

    Scripts seen only as a hash (a store that loads its own) must already be cached on the
    server: make one real call through the store before recording.
    """
    for source in recorder.sources.values():
        client.script_load(source)
    for start in range(0, len(recorder.calls), BATCH):
        pipe = client.pipeline(transaction=False)
        for call in recorder.calls[start : start + BATCH]:
            pipe.execute_command(*call)  # type: ignore[no-untyped-call]
        pipe.execute()
    recorder.calls.clear()
