"""Which versions answer no client: shadow challengers, and versions promoted to answer.

The registry's default choice is the highest version of a model, less its shadow
challenger, unless a version was promoted (then that one). The choices live in one
small JSON file in the state dir, written whole and replaced atomically, so every
worker of a server reads the same decision at its next refresh (as load/unload).
Without a state dir they live in the process. ``--shadow`` (``Settings.shadow``)
gives the choices a server starts with, until the admin API first changes them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import SettingsError

logger = logging.getLogger(__name__)

ROUTING_FILE = "shadows.json"


@dataclass(frozen=True)
class ShadowPlan:
    """One challenger: its version, the fraction of its model's requests it scores, and
    when it started (its report counts only since then)."""

    version: int
    fraction: float = 1.0
    started: float = 0.0


@dataclass(frozen=True)
class Routing:
    """The challengers by model name, and the versions promoted to answer."""

    shadows: Mapping[str, ShadowPlan] = field(default_factory=dict)
    promoted: Mapping[str, int] = field(default_factory=dict)

    def with_shadow(self, name: str, plan: ShadowPlan) -> Routing:
        return replace(self, shadows={**self.shadows, name: plan})

    def without_shadow(self, name: str) -> Routing:
        return replace(self, shadows={n: p for n, p in self.shadows.items() if n != name})

    def with_promoted(self, name: str, version: int) -> Routing:
        routing = self.without_shadow(name)
        return replace(routing, promoted={**routing.promoted, name: version})

    def to_json(self) -> str:
        shadows = {
            name: {"version": p.version, "fraction": p.fraction, "started": p.started}
            for name, p in sorted(self.shadows.items())
        }
        return json.dumps({"shadows": shadows, "promoted": dict(sorted(self.promoted.items()))})

    @classmethod
    def from_json(cls, text: str) -> Routing:
        """:raises ValueError: not the shape :meth:`to_json` writes."""
        data = json.loads(text)
        shadows = {
            str(name): ShadowPlan(int(p["version"]), float(p["fraction"]), float(p["started"]))
            for name, p in data["shadows"].items()
        }
        promoted = {str(name): int(v) for name, v in data["promoted"].items()}
        return cls(shadows, promoted)


def parse_shadows(text: str | None) -> dict[str, ShadowPlan]:
    """``name=version[@fraction],...`` (``--shadow``) as plans.

    :raises SettingsError: a part does not parse; the message names it.
    """
    plans: dict[str, ShadowPlan] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, equals, rest = part.strip().partition("=")
        version, at, fraction = rest.partition("@")
        try:
            plan = ShadowPlan(int(version), float(fraction) if at else 1.0)
        except ValueError:
            plan = None
        if not equals or not name or plan is None or plan.version < 1:
            raise SettingsError(f"shadow: expected NAME=VERSION[@FRACTION], got {part.strip()!r}")
        if not 0 < plan.fraction <= 1:
            raise SettingsError(f"shadow: {part.strip()!r}: the fraction must be in (0, 1]")
        if name in plans:
            raise SettingsError(f"shadow: model {name!r} is named twice; it has one challenger")
        plans[name] = plan
    return plans


class RoutingStore:
    """Reads and writes the routing, shared through *state_dir* when there is one.

    :param initial: what holds until the routing is first written (``--shadow``).
    """

    def __init__(self, state_dir: Path | None, initial: Routing | None = None) -> None:
        self._state_dir = state_dir
        self._local = initial or Routing()
        self._lock = threading.Lock()

    def set_initial(self, initial: Routing) -> None:
        self._local = initial

    def read(self) -> Routing:
        if self._state_dir is None:
            return self._local
        try:
            return Routing.from_json((self._state_dir / ROUTING_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return self._local
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            logger.error("ignoring unreadable %s: %s", ROUTING_FILE, e)
            return self._local

    def change(self, how: Callable[[Routing], Routing]) -> Routing:
        """Apply *how* to the current routing and store the result (atomically, for all)."""
        with self._lock:  # two threads of one worker; workers race as load/unload do
            routing = how(self.read())
            if self._state_dir is None:
                self._local = routing
                return routing
            self._state_dir.mkdir(parents=True, exist_ok=True)
            staging = self._state_dir / f".{ROUTING_FILE}.{os.getpid()}"
            staging.write_text(routing.to_json(), encoding="utf-8")
            os.replace(staging, self._state_dir / ROUTING_FILE)
            return routing
