"""Text for people: the tables and sections the CLI and the demo print.

The read models in ``pipeline.query`` return values; this package turns them into
text (and is where an HTML or JSON rendering would sit beside it).
"""
