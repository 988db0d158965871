"""Stop a listening TCP socket from taking new connections while it keeps those it has.

Closing a listening socket resets every connection still queued in its backlog:
clients that connected, sent their request, and were never answered. Dropping
new SYNs first (a socket filter, Linux) lets the queue be drained to the last
connection; a client whose SYN was dropped retries in about a second and finds
the port closed: a refusal it can retry elsewhere, never a request half-served.
"""

from __future__ import annotations

import ctypes
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
