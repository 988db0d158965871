"""Start, stop and promote a shadow challenger (the admin API's decisions).

Each decision is written where every worker reads it (:mod:`flaskserve.runtime.shadows`),
so all of them switch at their next refresh, within ``poll_seconds``.
"""

from __future__ import annotations

import time

from ..errors import InvalidInput, ModelNotFound, ModelNotReady
from ..runtime.registry import ModelRegistry, ServedModel, Snapshot, parse_version
from ..runtime.shadows import ShadowPlan


def start_shadow(registry: ModelRegistry, name: str, version: object, fraction: object) -> Snapshot:
    """Make *version* of *name* its challenger, scoring *fraction* of its requests.

    :raises InvalidInput: a bad version or fraction, the version answers now, or its
        features differ from the champion's (it could not score the same rows).
    :raises ModelNotFound: no such model or version.
    :raises ModelNotReady: the version failed its admission checks (the reason says which).
    """
    wanted = parse_version(version if isinstance(version, str | int) else repr(version))
    share = _fraction(fraction)
    snapshot = registry.refresh()
    snapshot.get(name)  # the model answers now (404/503 otherwise)
    challenger = _loaded(snapshot, name, wanted)
    champion = _champion_beside(snapshot, name, wanted)
    ours, theirs = champion.runtime.manifest, challenger.runtime.manifest
    if (ours.input, ours.feature_names) != (theirs.input, theirs.feature_names):
        raise InvalidInput(
            f"model {name!r} version {wanted}: its features differ from version"
            f" {champion.version}'s, so it cannot score the same rows"
        )
    plan = ShadowPlan(wanted, share, time.time())
    return registry.change_routing(lambda routing: routing.with_shadow(name, plan))


def stop_shadow(registry: ModelRegistry, name: str) -> Snapshot:
    """Stop *name*'s challenger; it answers no one until started or promoted.

    :raises ModelNotFound: *name* has no challenger.
    """
    _plan(registry.refresh(), name)
    return registry.change_routing(lambda routing: routing.without_shadow(name))


def promote_shadow(registry: ModelRegistry, name: str) -> ServedModel:
    """Make *name*'s challenger what answers, in every worker, and stop shadowing.

    The version is checked again first (the registry's load: hash, trusted types, smoke
    rows, through :func:`~flaskserve.admission.admit`, if its files changed since).

    :raises ModelNotFound: *name* has no challenger.
    :raises ModelNotReady: the challenger fails its checks now.
    """
    plan = _plan(registry.refresh(), name)
    snapshot = registry.refresh()
    _loaded(snapshot, name, plan.version)
    failed = snapshot.failures_of(name).get(plan.version)
    if failed is not None:  # an older copy still loaded, but its files no longer pass
        raise ModelNotReady(f"model {name!r} version {plan.version} fails its checks: {failed}")
    promoted = registry.change_routing(lambda routing: routing.with_promoted(name, plan.version))
    return promoted.get(name)


def _champion_beside(snapshot: Snapshot, name: str, challenger: int) -> ServedModel:
    """The version that answers while *challenger* is the shadow (it may answer now)."""
    versions = snapshot.models[name]
    others = [v for v in versions if v != challenger]
    pinned = snapshot.routing.promoted.get(name)
    if pinned == challenger or not others:
        why = "it was promoted" if pinned == challenger else "no other version is loaded"
        raise InvalidInput(
            f"model {name!r} version {challenger} cannot be a challenger: {why}, and a"
            " challenger needs another version to answer in its place"
        )
    return versions[pinned if pinned in others else max(others)]


def _plan(snapshot: Snapshot, name: str) -> ShadowPlan:
    plan = snapshot.routing.shadows.get(name)
    if plan is None:
        raise ModelNotFound(f"model {name!r} has no shadow challenger")
    return plan


def _loaded(snapshot: Snapshot, name: str, version: int) -> ServedModel:
    model = snapshot.models.get(name, {}).get(version)
    if model is not None:
        return model
    failed = snapshot.failures_of(name).get(version)
    if failed is not None:
        raise ModelNotReady(f"model {name!r} version {version} failed to load: {failed}")
    raise ModelNotFound(f"model {name!r} has no version {version}")


def _fraction(value: object) -> float:
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise InvalidInput(f"fraction: expected a number in (0, 1], got {value!r}")
    return float(value)
