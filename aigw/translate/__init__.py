"""Pure translation between wire formats (no I/O).

The hub is OpenAI chat completions: every client format is converted to it and
every provider format from it, so N formats need 2N converters, not N². When client
and target speak the same API the pipeline passes bodies through untranslated.

The hub stays OpenAI-shaped; what OpenAI chat cannot say travels in a few extensions,
each named as another OpenAI-compatible server already names it:

* request ``thinking``: ``{"type": "enabled", "budget_tokens": N}`` (LiteLLM's
  spelling) or ``{"type": "adaptive"}``, next to the ``reasoning_effort`` it refines: a
  numeric thinking budget for targets that take one, and a request to see thoughts.
  The OpenAI adapter removes it.
* answer ``reasoning_content`` (message field and stream delta, as DeepSeek and vLLM
  send it): thinking / thought summaries, shown to Anthropic clients as thinking blocks
  and to Gemini clients as ``thought`` parts.
* ``tool_calls[].extra_content.google.thought_signature`` (Google's OpenAI endpoint).
* ``cache_control`` on content parts (Anthropic prompt caching hints).
"""
