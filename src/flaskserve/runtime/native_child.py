"""Builds one native library, in a process of its own (run by :func:`.native.build`).

A child process, because TL2cgen's C++ core writes its notes (a checkpoint's Treelite
version, for one) straight to the process's standard error, where a server's log or
a command's output would show them, and because a crash in a compiler wrapper must not
take a serving worker with it. Run as a file, not as a module of the package, so the
child imports Treelite and TL2cgen and nothing of flaskserve.

    python native_child.py OUT_LIBRARY TOOLCHAIN THREADS < checkpoint
"""

import sys


def main() -> None:
    import tl2cgen
    import treelite

    library, toolchain, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    model = treelite.Model.deserialize_bytes(sys.stdin.buffer.read())
    tl2cgen.export_lib(
        model,
        toolchain=toolchain,
        libpath=library,
        params={"parallel_comp": max(1, min(8, model.num_tree // 50))},
        nthread=threads,
        verbose=False,
    )


if __name__ == "__main__":
    main()
