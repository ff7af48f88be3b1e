"""Text that str.isdigit() calls digits but int() and float() refuse ('²', '³')
is refused where it enters, never a 500 (hostile client or upstream input)."""

from __future__ import annotations

import aiohttp
import pytest

from aigw.errors import GatewayError
from aigw.formats.model_list import gemini_list
from aigw.providers.keypool import bench_seconds
from aigw.routing.retry import retry_after_seconds
from tests.conftest import RunningGateway

SUPERSCRIPT_TWO = "\u00b2"


def test_a_retry_after_of_superscript_digits_is_unreadable() -> None:
    assert retry_after_seconds(SUPERSCRIPT_TWO) is None
    assert retry_after_seconds("12") == 12.0


def test_a_gemini_page_token_or_size_of_superscript_digits_is_a_400() -> None:
    for query in ({"pageToken": SUPERSCRIPT_TWO}, {"pageSize": SUPERSCRIPT_TWO}):
        with pytest.raises(GatewayError) as err:
            gemini_list([], query)
        assert err.value.status == 400


async def test_the_models_listing_refuses_superscript_digits(gateway: RunningGateway) -> None:
    key = await gateway.key()
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            gateway.url + "/v1beta/models",
            params={"pageSize": SUPERSCRIPT_TWO},
            headers={"x-goog-api-key": key},
        ) as resp,
    ):
        assert resp.status == 400


def test_a_429_retry_after_of_superscript_digits_benches_for_the_default() -> None:
    assert bench_seconds(429, SUPERSCRIPT_TWO) == bench_seconds(429, "soon")
