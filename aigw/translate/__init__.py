"""Pure translation between wire formats (no I/O).

The hub is OpenAI chat completions: every client format is converted to it and
every provider format from it, so N formats need 2N converters, not N². When client
and target speak the same API the pipeline passes bodies through untranslated.
"""
