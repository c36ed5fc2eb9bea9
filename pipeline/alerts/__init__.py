"""Alert rules on cost: rule files in, alerts out (the alerts issue fills it).

Rule files are YAML validated by pydantic. Each rule has a ``kind`` (``budget``,
``anomaly``, ``tail_shift`` ...), and every kind is one pydantic model registered in
:data:`RULE_KINDS`; :func:`rule_type` builds the tagged union the rule-file model
validates against, so an unknown kind is refused with the list of known ones (with
one kind registered, pydantic names the one it expects). A kind's module registers
its model by importing into this package's registry; its evaluator (with the alerts
issue) reads the read models in ``pipeline/query`` (values, never SQL of its own);
delivery (Alertmanager, webhooks) and the firing state sit beside them in their own
modules. No kind is registered yet.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, Field

from pipeline.errors import ConfigError

# kind -> the pydantic model of a rule of that kind (its ``kind`` field is a Literal)
RULE_KINDS: dict[str, type[BaseModel]] = {}


def rule_type() -> Any:
    """The tagged union of the registered kinds, discriminated by ``kind``.

    Raises ConfigError if no kind is registered (nothing could validate).
    """
    kinds = tuple(RULE_KINDS.values())
    if not kinds:
        raise ConfigError("no alert rule kinds are registered in pipeline.alerts.RULE_KINDS")
    for name, model in RULE_KINDS.items():
        literal = getattr(model.model_fields.get("kind"), "annotation", None)
        if name not in getattr(literal, "__args__", ()):
            raise ConfigError(
                f"alert rule kind {name!r} is registered with {model.__name__}, whose `kind` "
                f"field is not Literal[{name!r}]"
            )
    if len(kinds) == 1:
        return kinds[0]
    return Annotated[Union[kinds], Field(discriminator="kind")]  # noqa: UP007 (a runtime tuple)


__all__ = ["RULE_KINDS", "rule_type"]
