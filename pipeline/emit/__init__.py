"""Sending costflow's events from an application or a gateway without writing the
contract by hand.

- :mod:`pipeline.emit.events`: contract-v1 events built from a provider response
  (through the usage mappers), validated by the contract's own models; pure.
- :mod:`pipeline.emit.emitter`: :class:`~pipeline.emit.emitter.Emitter`, which sends
  them to the input topics, keyed by ``task_id``, with ``acks=all``.
- :mod:`pipeline.emit.litellm_logger`: a LiteLLM callback that emits one call event
  per LiteLLM call (needs ``litellm`` installed).
"""
