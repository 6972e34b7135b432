"""The read side's SQL: pure builders (SQL text + bound parameters) and row converters.

Nothing here talks to a store or a web framework: every function takes plain values and returns
SQL, parameters or models, so the queries behind the read API and the pages are unit-tested
without a store (`tests/unit/sentinel/queries/`). `sentinel.views` runs them.
"""
