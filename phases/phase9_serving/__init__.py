"""Phase 9: serving (lesson: README.md in this folder).

Modules: ``protocol`` (the OpenAI wire format: schemas, limits, errors, responses), ``sse``
(server-sent events), ``toolcalls`` (calculator calls as ``<<expr=result>>``),
``scheduler`` (continuous batching over Phase 6's engine, prefix reuse), ``runner``,
``chat_api`` and ``completions`` (the two endpoints), ``metrics`` (Prometheus, access
logs), ``server`` (the FastAPI app), ``serve`` (``mini-nanochat serve``), ``chat``
(``mini-nanochat chat``, the terminal), ``runs`` (which model to load), ``static/`` (the
web page, with marked and DOMPurify vendored).
"""
