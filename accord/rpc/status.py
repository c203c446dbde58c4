"""The one place where Accord errors become gRPC status codes.

Handlers raise domain exceptions (:class:`accord.errors.AccordError` subclasses); this
interceptor aborts the call with the category's status code and the error's message. Anything
else is a bug: the caller sees INTERNAL with a reference, the server log has the traceback.
"""

from __future__ import annotations

import uuid
from typing import Any, NoReturn

import grpc
import structlog
from grpc_interceptor import ExceptionToStatusInterceptor

from accord import errors

log = structlog.get_logger(__name__)

# Most specific first: an error class may mix in one category only, but order keeps it explicit.
STATUS_BY_CATEGORY: tuple[tuple[type[errors.AccordError], grpc.StatusCode], ...] = (
    (errors.InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotAuthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.NotPermitted, grpc.StatusCode.PERMISSION_DENIED),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.Conflict, grpc.StatusCode.ALREADY_EXISTS),
    (errors.NotReady, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
)


def status_for(error: errors.AccordError) -> grpc.StatusCode:
    """The gRPC status code for an Accord error (INTERNAL for an uncategorised one)."""
    for category, code in STATUS_BY_CATEGORY:
        if isinstance(error, category):
            return code
    return grpc.StatusCode.INTERNAL


class ErrorStatusInterceptor(ExceptionToStatusInterceptor):
    """Maps exceptions raised by servicers (unary and streaming) to status codes."""

    def handle_exception(
        self,
        ex: Exception,
        request_or_iterator: Any,
        context: grpc.ServicerContext,
        method_name: str,
    ) -> NoReturn:
        if isinstance(ex, errors.AccordError):
            code = status_for(ex)
            log.info("request refused", method=method_name, code=code.name, reason=ex.message)
            context.abort(code, ex.message)
        current = getattr(context, "code", None)
        if callable(current) and current() is not None:  # the handler already aborted
            raise ex
        reference = uuid.uuid4().hex[:12]
        log.error("unhandled error", method=method_name, reference=reference, exc_info=ex)
        context.abort(
            grpc.StatusCode.INTERNAL, f"internal error (reference {reference} in the server log)"
        )
