"""Redis failures and script refusals as the OJS errors callers handle."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from redis import exceptions as redis_errors

from server.domain.errors import ErrorCode, OJSError, conflict, not_found
from server.store.status import ScriptStatus, status_of

P = ParamSpec("P")
R = TypeVar("R")


# (store operation, seconds, error class or None) of one round trip.
RoundTripObserver = Callable[[str, float, "str | None"], None]


class RoundTripObservers:
    """Where a store's round trips are reported (metrics); set once by the composition root."""

    def __init__(self) -> None:
        self.observer: RoundTripObserver | None = None


def translate_redis_errors(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Redis being unreachable is the caller's UNAVAILABLE, not a crash.

    Every call is timed and reported to the observer of the part's store context, if any.
    """
    operation = method.__name__

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        error: str | None = None
        try:
            return await method(*args, **kwargs)
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            error = type(exc).__name__
            raise OJSError(ErrorCode.BACKEND_UNAVAILABLE, f"backend unavailable: {exc}") from exc
        except redis_errors.BusyLoadingError as exc:
            error = type(exc).__name__
            raise OJSError(ErrorCode.BACKEND_UNAVAILABLE, "backend is loading its data") from exc
        except redis_errors.RedisError as exc:
            error = type(exc).__name__
            raise
        finally:
            ctx = getattr(args[0], "_ctx", None) if args else None
            observer = ctx.round_trips.observer if ctx is not None else None
            if observer is not None:
                observer(operation, time.perf_counter() - started, error)

    return wrapper


def unexpected(script: str, status: ScriptStatus) -> OJSError:
    """A status the script may send but not in this reply: the two sides disagree."""
    return OJSError(ErrorCode.BACKEND_ERROR, f"script {script} replied {status.value!r} where it may not")


def refusal(script: str, reply: list[Any], job_id: str, *, expected: str, action: str) -> OJSError:
    """The error for a script's refusal of a job transition."""
    status = status_of(reply[0], script)
    if status is ScriptStatus.NOT_FOUND:
        return not_found("job", job_id)
    if status is ScriptStatus.STALE_LEASE:
        return conflict(
            f"cannot {action} job '{job_id}': the lease was granted again since",
            job_id=job_id,
            current_lease_token=int(reply[1] or 0),
        )
    if status is ScriptStatus.NOT_OWNER:
        return conflict(
            f"cannot {action} job '{job_id}': it is held by another worker",
            job_id=job_id,
            current_worker=reply[1].decode(),
        )
    if status is ScriptStatus.CONFLICT:
        return state_conflict(job_id, reply[1], expected, action)
    return unexpected(script, status)


def state_conflict(job_id: str, current: bytes | str, expected: str, action: str) -> OJSError:
    state = current.decode() if isinstance(current, bytes) else current
    return conflict(
        f"cannot {action} job '{job_id}': it is {state}, not {expected}",
        job_id=job_id,
        current_state=state,
        expected_state=expected,
    )


def unique_conflict(existing_id: bytes, state: bytes) -> OJSError:
    return OJSError(
        ErrorCode.DUPLICATE,
        f"a job with the same unique key exists: '{existing_id.decode()}' ({state.decode()})",
        details={"existing_job_id": existing_id.decode(), "existing_job_state": state.decode()},
    )
