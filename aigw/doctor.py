"""`aigw doctor`: checks of an installation, each with what is wrong and how to fix it.

Every check returns :class:`Check` values; nothing here prints (the CLI renders them).
A check that cannot run because an earlier one failed says so (``skip``) rather than
failing twice. The provider check makes one tiny call per key (the probe of
`aigw providers test`); ``offline`` skips it.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from pathlib import Path

from aigw import config as config_mod
from aigw import paths, secrets
from aigw.config import DEFAULT_BASE_URLS, Config
from aigw.errors import AigwError, ConfigError, SecretError

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"

# A state file this large is worth a look (old ledger rows can be archived).
LARGE_STATE_BYTES = 2 * 1024**3


@dataclass(frozen=True, slots=True)
class Check:
    name: str  # config | state | counters | keyring | key:<provider> | provider:<name> | server
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


def check_config(config_file: Path) -> tuple[Check, Config | None]:
    if not config_file.exists():
        return Check(
            "config", FAIL, f"{config_file} does not exist", "run `aigw init` to write one"
        ), None
    try:
        cfg = config_mod.load(config_file)
    except ConfigError as exc:
        return Check("config", FAIL, str(exc), f"edit {config_file} and fix that setting"), None
    wide = paths.too_open(config_file)
    if wide:
        return Check("config", WARN, wide[0], f"chmod 600 {config_file}"), cfg
    n = len(cfg.providers)
    return Check(
        "config", OK, f"{config_file} parses ({n} providers, {len(cfg.models)} models)"
    ), cfg


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def check_state(state_file: Path) -> list[Check]:
    from aigw.store.sqlite import live

    if not state_file.exists():
        return [
            Check(
                "state",
                FAIL,
                f"{state_file} does not exist",
                "run `aigw init` (or start `aigw serve`, which creates it)",
            )
        ]
    out: list[Check] = []
    try:
        found = live.check_state(state_file)
    except AigwError as exc:
        return [
            Check(
                "state",
                FAIL,
                str(exc),
                f"stop the server, move {state_file} aside and restore it from a backup "
                f"(or salvage it: sqlite3 {state_file} .recover | sqlite3 new.db)",
            )
        ]
    if found.integrity != "ok":
        out.append(
            Check(
                "state",
                FAIL,
                f"integrity check failed: {found.integrity}",
                f"stop the server and restore {state_file} from a backup "
                f"(or salvage it: sqlite3 {state_file} .recover | sqlite3 new.db)",
            )
        )
    wal = Path(f"{state_file}-wal")
    size = state_file.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    wide = paths.too_open(state_file, wal, Path(f"{state_file}-shm"))
    if wide:
        out.append(
            Check(
                "state.permissions",
                FAIL,
                wide[0],
                f"chmod 700 {state_file.parent} && chmod 600 {state_file}*",
            )
        )
    if size > LARGE_STATE_BYTES:
        out.append(
            Check(
                "state.size",
                WARN,
                f"{_size(size)} on disk",
                "check the free space of its file system; archive old ledger rows",
            )
        )
    if found.integrity == "ok":
        out.insert(
            0,
            Check(
                "state",
                OK,
                f"{state_file}: integrity ok, {_size(size)}, {found.ledger_rows} ledger rows",
            ),
        )
    return out


async def check_postgres(cfg: Config) -> Check:
    """The [store] PostgreSQL database answers (and is migrated: opening does that)."""
    from aigw.store.open import open_store

    try:
        store = await open_store(cfg, paths.resolve().state_file)
    except AigwError as exc:
        return Check(
            "state",
            FAIL,
            str(exc),
            "check [store] url, that the server runs and accepts this host, and the password "
            "(AIGW_STORE_PASSWORD, PGPASSWORD or ~/.pgpass)",
        )
    try:
        found = await store.readiness()
    finally:
        await store.close()
    return Check(
        "state", OK if found["database"] == "ok" else WARN, f"PostgreSQL: {found['database']}"
    )


# Each limited request waits for one Redis round trip: slower than this is worth a look.
SLOW_COUNTERS_MS = 5.0
_COUNTERS_PINGS = 5


async def check_counters(cfg: Config, wait: float) -> Check:
    """The [counters] Redis answers, accepts the password and runs scripts; its latency."""
    import time

    from redis.exceptions import AuthenticationError, RedisError, ResponseError

    from aigw.limits.shared import connect, where

    at = where(cfg.counters.url)
    auth_fix = (
        "set the Redis password in AIGW_COUNTERS_PASSWORD (or REDISCLI_AUTH), or keep it in "
        "the OS keyring (service 'aigw', user 'aigw-counters')"
    )
    client = connect(cfg.counters)
    try:
        async with asyncio.timeout(wait):
            times = []
            for _ in range(_COUNTERS_PINGS):
                started = time.perf_counter()
                await client.ping()
                times.append((time.perf_counter() - started) * 1000)
            await client.eval("return 1", 0)  # the limits are Lua scripts
    except AuthenticationError as exc:
        return Check("counters", FAIL, f"Redis at {at} refused the password ({exc})", auth_fix)
    except ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
            return Check("counters", FAIL, f"Redis at {at} needs a password ({exc})", auth_fix)
        return Check(
            "counters",
            FAIL,
            f"Redis at {at} refused a command ({exc})",
            "the counters need Redis 6.2 or later with Lua scripting (EVAL) allowed",
        )
    except (RedisError, OSError, TimeoutError) as exc:
        return Check(
            "counters",
            FAIL,
            f"Redis at {at} is unreachable ({type(exc).__name__}: {exc})",
            f"check [counters] url and that Redis runs and accepts this host; until it "
            f"answers, on_unavailable = {cfg.counters.on_unavailable!r} decides",
        )
    finally:
        await client.aclose()
    median = sorted(times)[len(times) // 2]
    detail = f"Redis at {at}: ok, round trip {median:.2f} ms (median of {len(times)})"
    if median > SLOW_COUNTERS_MS:
        return Check(
            "counters",
            WARN,
            detail,
            "every limited request waits for one round trip: run Redis closer to the gateway",
        )
    return Check("counters", OK, detail)


def check_keyring() -> Check:
    try:
        secrets.check_backend("NAME")
        import keyring

        backend = keyring.get_keyring()
        backend.get_password(secrets.SERVICE, "aigw-doctor")  # a locked keyring fails here
    except SecretError:
        # Not fatal: keys may come from the environment or systemd credentials.
        return Check(
            "keyring",
            WARN,
            "no usable OS keyring backend (common on headless servers)",
            "give provider keys as AIGW_<NAME>_API_KEY or systemd credentials "
            "(LoadCredential=aigw-<name>:/path), or install a keyring backend "
            "(e.g. `pip install keyrings.alt`)",
        )
    except Exception as exc:
        return Check(
            "keyring",
            WARN,
            f"the OS keyring failed: {type(exc).__name__}: {exc}",
            "unlock it, or give provider keys as AIGW_<NAME>_API_KEY / systemd credentials",
        )
    return Check("keyring", OK, f"backend {type(backend).__module__}.{type(backend).__name__}")


def check_keys(cfg: Config) -> list[Check]:
    from aigw.providers import adapters

    by_type = adapters()
    out = []
    for name, pc in cfg.providers.items():
        if not by_type[pc.type].needs_key:
            continue
        found = secrets.lookup_keys(name)
        if found is not None:
            keys, source = found
            n = f"{len(keys)} keys" if len(keys) > 1 else "a key"
            out.append(Check(f"key:{name}", OK, f"{n} from {source}"))
            continue
        official = pc.base_url.rstrip("/") == DEFAULT_BASE_URLS.get(pc.type, "").rstrip("/")
        fix = (
            f"run `aigw providers set-key {name}`, or set {secrets.env_var_name(name)}, or "
            f"a systemd credential (LoadCredential={secrets.credential_name(name)}:/path)"
        )
        if official:
            out.append(Check(f"key:{name}", FAIL, "no API key found", fix))
        else:  # a local compatible server may take none
            out.append(
                Check(f"key:{name}", WARN, "no API key found (calls go out unauthenticated)", fix)
            )
    return out


def _probe_model(cfg: Config, name: str) -> str | None:
    """A model the operator routes to ``name``, else the cheapest the price table lists."""
    for m in cfg.models.values():
        for t in m.targets or ():
            if t.provider == name:
                return t.model
        if m.provider == name:
            return m.model
    return None


async def check_providers(cfg: Config, wait: float) -> list[Check]:
    from aigw.pricing import load_shipped
    from aigw.providers import build
    from aigw.providers.http import new_session
    from aigw.providers.probe import default_model, probe

    shipped = load_shipped()
    session = new_session(min(wait, cfg.upstream.connect_timeout))
    out = []
    try:
        providers = build(cfg, session, {})
        for name, provider in providers.items():
            model = _probe_model(cfg, name) or default_model(provider, shipped)
            if model is None:
                out.append(
                    Check(
                        f"provider:{name}",
                        SKIP,
                        f"no model to ask (the price table lists none for {provider.type})",
                        f'route one to it: [models.NAME] provider = "{name}"',
                    )
                )
                continue
            results = await probe(provider, model, wait)
            bad = [r for r in results if not r.ok]
            if not bad:
                ms = max(r.latency_ms for r in results)
                out.append(Check(f"provider:{name}", OK, f"{model} answered in {ms} ms"))
                continue
            r = bad[0]
            who = f"key {r.key} of {len(results)}: " if r.key is not None else ""
            status = f" ({r.status})" if r.status else ""
            fix = (
                f"check the key (`aigw providers set-key {name}`)"
                if r.status in (401, 403)
                else f"check {cfg.providers[name].base_url} is reachable from this machine"
                if r.status is None
                else f"see the provider's message; `aigw providers test {name}` retries"
            )
            out.append(Check(f"provider:{name}", FAIL, f"{who}{model}{status}: {r.error}", fix))
    finally:
        await session.close()
    return out


async def check_server(cfg: Config, wait: float) -> Check:
    import aiohttp

    host = cfg.server.host
    # A wildcard address is reached on loopback.
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{cfg.server.port}/healthz"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=wait)) as session,
            session.get(url) as resp,
        ):
            status = resp.status
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        reason = "no answer in time" if isinstance(exc, TimeoutError) else str(exc)
        return Check(
            "server",
            FAIL,
            f"{url}: {reason}",
            "start it: `aigw serve` (or `systemctl start aigw`); check [server] host and port",
        )
    if status != 200:
        return Check("server", FAIL, f"{url} answered {status}", "see the server's log")
    return Check("server", OK, f"{url} answers")


def run(*, offline: bool = False, wait: float = 10.0) -> list[Check]:
    """Every check, in order."""
    p = paths.resolve()
    checks: list[Check] = []
    first, cfg = check_config(p.config_file)
    checks.append(first)
    if cfg is not None and cfg.store.url:
        checks.append(asyncio.run(check_postgres(cfg)))
    else:
        checks.extend(check_state(p.state_file))
    if cfg is not None and cfg.counters.url:
        checks.append(asyncio.run(check_counters(cfg, min(wait, 5.0))))
    checks.append(check_keyring())
    if cfg is None:
        checks.append(Check("providers", SKIP, "the config did not load"))
        return checks
    checks.extend(check_keys(cfg))

    async def network() -> list[Check]:
        out = [] if offline else await check_providers(cfg, wait)
        out.append(await check_server(cfg, min(wait, 5.0)))
        return out

    if offline:
        checks.append(Check("providers", SKIP, "--offline: no provider was called"))
    checks.extend(asyncio.run(network()))
    return checks


def failed(checks: list[Check]) -> bool:
    return any(c.status == FAIL for c in checks)
