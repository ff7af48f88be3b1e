"""OpenAI embeddings <-> Gemini batchEmbedContents."""

from __future__ import annotations

import base64
import struct

import pytest
from openai.types import CreateEmbeddingResponse

from aigw.translate.common import TranslationError
from aigw.translate.gemini import embeddings_to_gemini_request, gemini_to_embeddings_response
from tests.translate.gemini.helpers import JSON, load


def test_embeddings_request() -> None:
    t = embeddings_to_gemini_request(
        {
            "model": "text-embedding-3-small",
            "input": ["a", "b"],
            "dimensions": 8,
            "encoding_format": "base64",
            "user": "u",
        },
        upstream_model="gemini-embedding-001",
    )
    assert t.body == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "a"}]},
                "outputDimensionality": 8,
            },
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "b"}]},
                "outputDimensionality": 8,
            },
        ]
    }
    assert t.warnings == ["'user' was dropped: Gemini has no equivalent."]
    single = embeddings_to_gemini_request(
        {"input": "hi"}, upstream_model="models/text-embedding-004"
    )
    assert single.body == {
        "requests": [{"model": "models/text-embedding-004", "content": {"parts": [{"text": "hi"}]}}]
    }


@pytest.mark.parametrize(
    ("req", "param"),
    [
        ({"input": [1, 2, 3]}, "input[0]"),
        ({"input": [[1, 2]]}, "input[0]"),
        ({"input": []}, "input"),
        ({}, "input"),
        ({"input": ["x"] * 101}, "input"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
    ],
)
def test_embeddings_request_errors(req: JSON, param: str) -> None:
    with pytest.raises(TranslationError) as e:
        embeddings_to_gemini_request(req, upstream_model="gemini-embedding-001")
    assert e.value.param == param


def test_embeddings_response_float_and_base64() -> None:
    recorded = load("batch_embed_contents.json")["response"]
    out = gemini_to_embeddings_response(
        recorded, model="text-embedding-3-small", encoding_format=None, prompt_tokens=12
    )
    CreateEmbeddingResponse.model_validate(out)
    assert [d["index"] for d in out["data"]] == [0, 1]
    assert out["data"][0]["embedding"] == recorded["embeddings"][0]["values"]
    assert out["usage"] == {"prompt_tokens": 12, "total_tokens": 12}
    assert out["model"] == "text-embedding-3-small"

    b64 = gemini_to_embeddings_response(
        recorded, model="m", encoding_format="base64", prompt_tokens=12
    )
    for item, emb in zip(b64["data"], recorded["embeddings"], strict=True):
        raw = base64.b64decode(item["embedding"])
        decoded = struct.unpack(f"<{len(raw) // 4}f", raw)  # what the openai SDK does
        assert decoded == pytest.approx(emb["values"], rel=1e-6)


def test_embeddings_response_variants() -> None:
    one = gemini_to_embeddings_response(
        {"embedding": {"values": [1, 0.5]}, "usageMetadata": {"promptTokenCount": 3}},
        model="m",
        encoding_format="float",
        prompt_tokens=99,
    )
    assert one["data"][0]["embedding"] == [1.0, 0.5] and one["usage"]["prompt_tokens"] == 3
    for bad in ({}, {"embeddings": [{"values": ["x"]}]}, {"embeddings": [5]}):
        with pytest.raises(TranslationError):
            gemini_to_embeddings_response(bad, model="m", encoding_format=None, prompt_tokens=0)
