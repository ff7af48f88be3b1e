"""Fake providers: real aiohttp servers on 127.0.0.1:0 speaking real wire formats."""
