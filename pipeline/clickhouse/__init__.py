"""ClickHouse as costflow's store: the client (a server over HTTP, or chDB in-process),
schema migrations, and the access SQL for a server (roles, row policies, sink user).
Used by the sink, the read models in ``pipeline.query``, the CLI and the demo."""
