"""Whether a process still runs: leases and in-flight work belong to live processes, and a
restarted one takes over a dead one's work at once (every adapter that keeps leases asks this)."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True while process `pid` exists on this host (also when it belongs to another user)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
