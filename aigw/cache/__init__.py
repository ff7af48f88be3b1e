"""The response cache: canonical keys, the two-level store, replay of stored answers.

* :mod:`aigw.cache.key` -- which calls may be cached and their key;
* :mod:`aigw.cache.store` -- an in-memory LRU front over the state file's table;
* :mod:`aigw.cache.replay` -- a stored answer as JSON or as an SSE stream in the
  client's format (rendered through the same code a live answer goes through).

The step that uses them is :mod:`aigw.pipeline.cache`.
"""
