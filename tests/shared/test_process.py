"""shared.process: the process id without a system call, right after a fork too."""

from __future__ import annotations

import os

from shared.process import current_pid


def test_the_id_is_this_process_s() -> None:
    assert current_pid() == os.getpid()


def test_a_forked_child_sees_its_own_id_not_its_parent_s() -> None:
    parent = current_pid()
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # in the child: report, then leave without running the parent's exit code
        os.write(write_end, f"{current_pid()} {os.getpid()}".encode())
        os._exit(0)
    os.close(write_end)
    reported, real = os.read(read_end, 64).decode().split()
    os.close(read_end)
    os.waitpid(child, 0)
    assert reported == real == str(child)
    assert current_pid() == parent == os.getpid()
