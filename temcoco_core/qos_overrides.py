# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""``qos_overrides.*`` parameters, checked before rclpy sees them.

ROS 2 lets a parameter file change the QoS of a node's publishers and subscriptions::

    /**:
      ros__parameters:
        qos_overrides:
          /fused/image:
            publisher:
              reliability: best_effort
              depth: 2

rclpy applies them only to entities created with ``QoSOverridingOptions`` and only for the
policies those options list (``qos_overrides.<topic>.<publisher|subscription>[_<id>].<policy>``
read-only parameters); everything else in the file is silently ignored. This module parses the
flat parameter names (:func:`parse_qos_overrides`) and checks them against the entities the
node really creates (:func:`validate_qos_overrides`), so a misspelt topic, policy or value is a
clear error at configure instead of a setting that never takes effect. The values follow
rclpy's ``_override_qos_policy_with_param``: policy enums as lower-case names, ``depth`` an
integer, durations integer nanoseconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
import difflib
from typing import Any

__all__ = [
    "DURATION_POLICIES",
    "ENUM_POLICIES",
    "POLICIES",
    "QOS_OVERRIDES_PREFIX",
    "QosEntity",
    "QosOverride",
    "QosOverrideError",
    "parse_qos_overrides",
    "validate_qos_overrides",
]

QOS_OVERRIDES_PREFIX = "qos_overrides."

#: Enum policies and the values rclpy accepts for them (``<Policy>Policy[value.upper()]``);
#: ``best_available`` exists from Iron on (rclpy refuses it on Humble).
ENUM_POLICIES: dict[str, tuple[str, ...]] = {
    "history": ("system_default", "keep_last", "keep_all"),
    "reliability": ("system_default", "reliable", "best_effort", "best_available"),
    "durability": ("system_default", "transient_local", "volatile", "best_available"),
    "liveliness": ("system_default", "automatic", "manual_by_topic", "best_available"),
}
#: Policies given as integer nanoseconds.
DURATION_POLICIES = ("deadline", "lifespan", "liveliness_lease_duration")
#: Every policy rclpy can override (``QoSPolicyKind`` without INVALID and
#: AVOID_ROS_NAMESPACE_CONVENTIONS); ``lifespan`` applies to publishers only.
POLICIES = ("history", "depth", "reliability", "durability", "deadline", "lifespan",
            "liveliness", "liveliness_lease_duration")
_ENTITY_KINDS = ("publisher", "subscription")


def _entity_key(topic: str, kind: str, entity_id: str | None) -> str:
    suffix = f"_{entity_id}" if entity_id is not None else ""
    return f"{topic}.{kind}{suffix}"


class QosOverrideError(ValueError):
    """One or more ``qos_overrides.*`` parameters cannot take effect.

    Attributes:
        problems: one line per problem, each naming the parameter.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        super().__init__(f"{n} invalid QoS override{'s' if n != 1 else ''}:\n  "
                         + "\n  ".join(self.problems))


@dataclass(frozen=True)
class QosEntity:
    """A publisher or subscription the node creates with ``QoSOverridingOptions``.

    Attributes:
        topic: fully qualified topic name (rclpy names the parameters after it).
        kind: ``"publisher"`` or ``"subscription"``.
        entity_id: ``QoSOverridingOptions.entity_id`` or ``None``.
        policies: the policies the options make overridable.
    """

    topic: str
    kind: str
    entity_id: str | None = None
    policies: tuple[str, ...] = ("history", "depth", "reliability")

    @property
    def key(self) -> str:
        """``<topic>.<kind>[_<id>]``, the middle of the parameter names."""
        return _entity_key(self.topic, self.kind, self.entity_id)


@dataclass(frozen=True)
class QosOverride:
    """One ``qos_overrides.<topic>.<kind>[_<id>].<policy>`` parameter."""

    name: str
    topic: str
    kind: str
    entity_id: str | None
    policy: str
    value: Any

    @property
    def entity_key(self) -> str:
        """The :attr:`QosEntity.key` of the entity it overrides."""
        return _entity_key(self.topic, self.kind, self.entity_id)


def _check_value(policy: str, value: Any, enum_values: Mapping[str, tuple[str, ...]]) -> str:
    """``""`` when rclpy would accept ``value`` for ``policy``, else why not."""
    if policy in enum_values:
        allowed = enum_values[policy]
        if not isinstance(value, str) or value.lower() not in allowed:
            return f"must be one of {', '.join(allowed)}, got {value!r}"
        return ""
    if isinstance(value, bool) or not isinstance(value, int):
        unit = " (integer nanoseconds)" if policy in DURATION_POLICIES else ""
        return f"must be an integer{unit}, got {value!r}"
    if value < 0:
        return f"must be >= 0, got {value}"
    return ""


def parse_qos_overrides(values: Mapping[str, Any],
                        enum_values: Mapping[str, tuple[str, ...]] | None = None
                        ) -> tuple[list[QosOverride], list[str]]:
    """The ``qos_overrides.*`` entries of a flat parameter mapping.

    Args:
        values: flat parameter names → values.
        enum_values: allowed values of the enum policies (default :data:`ENUM_POLICIES`; the
            node passes the names of its rclpy's enums, so Humble refuses ``best_available``).

    Returns:
        ``(overrides, problems)``: well-formed entries, and one line per entry whose name or
        value rclpy would not apply.
    """
    overrides: list[QosOverride] = []
    problems: list[str] = []
    for name, value in values.items():
        if not name.startswith(QOS_OVERRIDES_PREFIX):
            continue
        parts = name[len(QOS_OVERRIDES_PREFIX):].split(".")
        if len(parts) != 3 or not parts[0].startswith("/"):
            problems.append(f"{name}: expected qos_overrides.<fully qualified topic>."
                            "<publisher|subscription>[_<id>].<policy>")
            continue
        topic, entity, policy = parts
        kind, sep, entity_id = entity.partition("_")
        if kind not in _ENTITY_KINDS or (sep and not entity_id):
            problems.append(f"{name}: {entity!r} is neither publisher nor subscription "
                            "(optionally with _<id>)")
            continue
        if policy not in POLICIES:
            close = difflib.get_close_matches(policy, POLICIES, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{name}: unknown QoS policy {policy!r}{hint}; known: "
                            f"{', '.join(POLICIES)}")
            continue
        if policy == "lifespan" and kind == "subscription":
            problems.append(f"{name}: lifespan is a publisher policy")
            continue
        why = _check_value(policy, value, enum_values or ENUM_POLICIES)
        if why:
            problems.append(f"{name}: {why}")
            continue
        overrides.append(QosOverride(name, topic, kind, entity_id or None, policy,
                                     value.lower() if isinstance(value, str) else value))
    return overrides, problems


def validate_qos_overrides(values: Mapping[str, Any], entities: Iterable[QosEntity],
                           enum_values: Mapping[str, tuple[str, ...]] | None = None
                           ) -> list[QosOverride]:
    """Check every ``qos_overrides.*`` entry against the entities the node creates.

    Args:
        values: flat parameter names → values (a parameter file, or the node's overrides).
        entities: the publishers/subscriptions created with ``QoSOverridingOptions``.
        enum_values: see :func:`parse_qos_overrides`.

    Returns:
        The overrides, all of which will take effect.

    Raises:
        QosOverrideError: malformed names, unknown policies or values, topics the node has no
            such entity on, or policies its options do not make overridable -- every problem
            at once, with the node's overridable entities listed.
    """
    overrides, problems = parse_qos_overrides(values, enum_values)
    by_key = {e.key: e for e in entities}
    for o in overrides:
        entity = by_key.get(o.entity_key)
        if entity is None:
            known = "; ".join(sorted(by_key)) or "none"
            close = difflib.get_close_matches(o.entity_key, by_key, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{o.name}: this node has no {o.kind} on {o.topic}{hint}; "
                            f"overridable: {known}")
        elif o.policy not in entity.policies:
            problems.append(f"{o.name}: {o.policy} is not overridable for {entity.key} "
                            f"(overridable: {', '.join(entity.policies)})")
    by_entity: dict[str, dict[str, Any]] = {}
    for o in overrides:
        by_entity.setdefault(o.entity_key, {})[o.policy] = o.value
    for key, pol in by_entity.items():
        if pol.get("history") == "keep_all" and "depth" in pol:
            problems.append(f"qos_overrides.{key}: depth has no effect with history keep_all")
        if pol.get("history", "keep_last") == "keep_last" and pol.get("depth", 1) == 0:
            problems.append(f"qos_overrides.{key}.depth: keep_last needs a depth >= 1")
    if problems:
        raise QosOverrideError(problems)
    return overrides
