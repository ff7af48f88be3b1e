"""OpenTelemetry traces: one span per request, one child span per upstream attempt.

Optional: the packages come with ``pip install 'aigw[otel]'`` and are imported only
when ``[otel] enabled = true``; with tracing off nothing here runs on the request path
(the pipeline and the attempt loop hold ``None``). Spans carry who called (team, key
id, app), what was asked (endpoint, model, stream) and how it went (provider, status,
tokens, cost, attempts) -- never a key, a prompt or an answer. Exported in batches
over OTLP/HTTP by the SDK's own thread, so an unreachable collector does not slow
requests (the SDK drops spans when its queue is full).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from aigw.config.otel import OtelConfig
from aigw.errors import ConfigError, GatewayError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

    from aigw.pipeline.context import Context
    from aigw.routing.targets import Target

# One attempt at one target (as aigw.pipeline.attempts.SendOne).
SendOne = Callable[["Context", "Target", float], Awaitable[web.StreamResponse]]

MISSING = (
    "[otel] enabled = true, but OpenTelemetry is not installed: "
    "pip install 'aigw[otel]' (or set [otel] enabled = false)"
)


def available() -> bool:
    """Whether the [otel] extra is installed."""
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        return False
    return True


def check(cfg: OtelConfig) -> None:
    """Refuse to start with tracing on and the extra missing (a clear message, at once)."""
    if cfg.enabled and not available():
        raise ConfigError(MISSING)


def make_exporter(cfg: OtelConfig) -> SpanExporter:
    """The OTLP/HTTP exporter (tests replace this with the SDK's in-memory one)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=cfg.endpoint or None)


class Tracing:
    """The tracer a running gateway uses, and the provider it flushes at shutdown."""

    def __init__(self, provider: TracerProvider) -> None:
        from opentelemetry import propagate, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("aigw")
        self._trace, self._kind, self._extract = trace, SpanKind, propagate.extract
        self._status, self._code = Status, StatusCode

    def start(self, ctx: Context) -> Span:
        """The request's span, started now (ended by :meth:`end`)."""
        request = ctx.request
        attrs: dict[str, Any] = {"aigw.endpoint": ctx.endpoint, "aigw.request_id": ctx.request_id}
        parent = None
        if request is not None:
            attrs["http.request.method"] = request.method
            attrs["url.path"] = request.path
            # A client's W3C traceparent makes this span a child of the caller's trace.
            if "traceparent" in request.headers:
                parent = self._extract(request.headers)
        return self.tracer.start_span(
            f"aigw {ctx.endpoint}", context=parent, kind=self._kind.SERVER, attributes=attrs
        )

    def end(self, span: Span, ctx: Context) -> None:
        key, target, usage = ctx.key, ctx.target, ctx.usage
        attrs: dict[str, Any] = {
            "aigw.request_id": ctx.request_id,  # the client's own, once known
            "http.response.status_code": ctx.status,
            "aigw.stream": ctx.stream,
            "aigw.attempts": ctx.tries,
        }
        if key is not None:
            attrs["aigw.team"] = key.team
            attrs["aigw.key_id"] = key.id
            if key.app:
                attrs["aigw.app"] = key.app
        if ctx.model:
            attrs["gen_ai.request.model"] = ctx.model
        if target is not None:
            attrs["gen_ai.system"] = target.provider.type
            attrs["aigw.provider"] = target.provider.name
            attrs["gen_ai.response.model"] = target.upstream_model
        if usage is not None:
            attrs["gen_ai.usage.input_tokens"] = usage.prompt_tokens
            attrs["gen_ai.usage.output_tokens"] = usage.completion_tokens
        if ctx.cost_nusd is not None:
            attrs["aigw.cost_nusd"] = ctx.cost_nusd
        if ctx.cache:
            attrs["aigw.cache"] = ctx.cache
        if ctx.first_byte is not None:
            attrs["aigw.ttft_ms"] = int((ctx.first_byte - ctx.started) * 1000)
        span.set_attributes(attrs)
        if ctx.status >= 500:
            span.set_status(self._status(self._code.ERROR, ctx.error or str(ctx.status)))
        span.end()

    def attempts(self, send: SendOne) -> SendOne:
        """``send`` inside a child span of the request's: one per upstream attempt."""
        tracer, trace = self.tracer, self._trace
        error = self._code.ERROR
        status_of = self._status

        async def attempt(ctx: Context, target: Target, left: float) -> web.StreamResponse:
            parent = trace.set_span_in_context(ctx.trace) if ctx.trace is not None else None
            span = tracer.start_span(
                "aigw attempt",
                context=parent,
                kind=self._kind.CLIENT,
                attributes={
                    "aigw.target": target.id,
                    "aigw.provider": target.provider.name,
                    "gen_ai.request.model": target.upstream_model,
                    "aigw.attempt": ctx.tries + 1,
                },
            )
            try:
                resp = await send(ctx, target, left)
            except GatewayError as err:
                span.set_attribute("http.response.status_code", err.status)
                kind = getattr(err, "kind", None)
                if kind is not None:
                    span.set_attribute("aigw.failure", kind)
                span.set_status(status_of(error, err.code or str(err.status)))
                raise
            except BaseException as exc:
                span.set_status(status_of(error, type(exc).__name__))
                raise
            else:
                span.set_attribute("http.response.status_code", ctx.status)
                if ctx.upstream_request_id:
                    span.set_attribute("aigw.upstream_request_id", ctx.upstream_request_id[:256])
                return resp
            finally:
                span.end()

        return attempt

    def flush(self) -> None:
        self.provider.force_flush()

    def shutdown(self) -> None:
        self.provider.shutdown()


def start(cfg: OtelConfig) -> Tracing | None:
    """The gateway's tracing, or None when ``[otel]`` is off."""
    if not cfg.enabled:
        return None
    check(cfg)
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": cfg.service_name}),
        sampler=ParentBased(TraceIdRatioBased(cfg.sample_ratio)),
    )
    provider.add_span_processor(BatchSpanProcessor(make_exporter(cfg)))
    return Tracing(provider)


TRACING = web.AppKey("tracing", Tracing)
