"""The listening socket: connections handed over once they have sent, and no new ones on stop.

Closing a listening socket resets every connection still queued in its backlog:
clients that connected, sent their request, and were never answered. Dropping
new SYNs first (a socket filter, Linux) lets the queue be drained to the last
connection; a client whose SYN was dropped retries in about a second and finds
the port closed: a refusal it can retry elsewhere, never a request half-served.

The filter acts on the socket itself, which the master and every worker share: it is
put in place only when the whole server stops (the master has closed its copy first,
as gunicorn's does). A worker that stops alone (``TTOU``, a recycled worker) leaves
the queue to its siblings; before, its filter left the server taking no connection.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct

SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)

# Classic BPF, run on each packet for the listener; the packet starts at the TCP header.
_LOAD_FLAGS_BYTE = (0x30, 0, 0, 13)  # ldb [13]: the TCP flags
_KEEP_SYN_AND_ACK = (0x54, 0, 0, 0x12)  # and #(SYN|ACK)
_IF_SYN_ONLY = (0x15, 0, 1, 0x02)  # jeq #SYN: a new connection's first packet
_DROP = (0x06, 0, 0, 0)  # ret #0
_PASS = (0x06, 0, 0, 0xFFFFFFFF)  # ret #all
REFUSE_SYN_PROGRAM = (_LOAD_FLAGS_BYTE, _KEEP_SYN_AND_ACK, _IF_SYN_ONLY, _DROP, _PASS)


def refuse_new_connections(sock: socket.socket) -> bool:
    """Drop SYNs to *sock* from now on; queued and half-open connections complete as usual.

    :returns: whether the filter is in place (``False`` where the system has no
        socket filters, e.g. not Linux: the caller drains what it can anyway).
    """
    instructions = b"".join(struct.pack("HBBI", *op) for op in REFUSE_SYN_PROGRAM)
    program = ctypes.create_string_buffer(instructions)
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }
    fprog = struct.pack("HL", len(REFUSE_SYN_PROGRAM), ctypes.addressof(program))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError:
        return False
    return True


def still_listening(pid: int, sock: socket.socket) -> bool:
    """Whether process *pid* (the master) still holds *sock* open (Linux's ``/proc``).

    ``False`` where that cannot be read: a worker then drains the queue, as when the
    whole server stops.
    """
    target = f"socket:[{os.fstat(sock.fileno()).st_ino}]"
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in descriptors:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                return True
        except OSError:  # closed meanwhile
            continue
    return False


def defer_accept(sock: socket.socket, seconds: int) -> None:
    """Let the kernel hand over a connection only once its first bytes have come (Linux).

    A connection that has sent nothing waits up to *seconds* in the kernel, then is
    handed over anyway. A usual request is then whole when it is accepted and
    answered at once: a worker holds no new connection that is still idle, so a
    worker that dies (SIGKILL, OOM) costs a client that opens a connection per
    request only the request it was answering, as a stock sync worker's does.
    """
    if hasattr(socket, "TCP_DEFER_ACCEPT") and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, seconds)
        except OSError:  # not a TCP socket after all: accept as it comes
            pass
