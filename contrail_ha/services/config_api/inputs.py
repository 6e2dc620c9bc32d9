"""contrail-api's untrusted input as Python values: strict JSON, typed parameters, the request's
context - with no HTTP, so that the service layer and the HTTP boundary (``wire``) share them.

- ``parse_json`` is strict: UTF-8 JSON only (no ``NaN``/``Infinity``, no float overflowing to
  infinity), nested at most ``MAX_DEPTH`` deep, no lone surrogate (``"\\ud800"``) in any string
  or key.
- The ``*_param`` helpers turn one untrusted value into a typed one or raise a ``FieldError``
  (400 naming the field): a uuid is a string in UUID form, an id list has at most ``MAX_IDS``
  entries, strings and integers are bounded. The limits are documented in docs/api-limits.md.
"""

from __future__ import annotations

import json
import math
import re
from contextvars import ContextVar
from typing import Any

from contrail_ha.services.config_api.objects import ConfigError
from contrail_ha.services.config_api.validation import (
    FieldError,
    check_fq_name_limits,
    check_uuid,
    show,
)

MAX_DEPTH = 64  # JSON nesting (the deepest XSD value, wrappers included, is ~12)
MAX_IDS = 1000  # ids (or fq_names) in one id-list parameter
MAX_FIELDS = 1000  # names in a fields= parameter
MAX_PARAM = 64 * 1024  # characters of one free-form string parameter (filters, ...)

_SURROGATE = re.compile("[\ud800-\udfff]")

# The id HAProxy gives each request (retries of a request keep it); None when not behind HAProxy.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
# Who made the request being served: the config log's "who" (user, user agent, client address).
REQUESTER: ContextVar[dict[str, str] | None] = ContextVar("requester", default=None)


def csv_list(v: str | None) -> list[str]:
    """The non-empty items of a comma-separated query value."""
    return [x for x in (v or "").split(",") if x]


# --------------------------------------------------------------------------------------------
# JSON


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def check_tree(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Refuse a decoded JSON value nested deeper than ``max_depth`` or holding a lone surrogate
    in a string or key (it cannot be encoded as UTF-8: Cassandra, ZooKeeper and the notification
    would fail on it after the request's first write). Iterative: no recursion on hostile input."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise ConfigError(f"Malformed JSON body: lone surrogate in string {show(item)}")
        elif isinstance(item, (dict, list)):
            if depth > max_depth:
                raise ConfigError(f"Malformed JSON body: nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for k, v in item.items():
                    if _SURROGATE.search(k):
                        raise ConfigError(f"Malformed JSON body: lone surrogate in key {show(k)}")
                    stack.append((v, depth + 1))
            else:
                stack.extend((v, depth + 1) for v in item)


def parse_json(raw: bytes | str) -> Any:
    """Strict JSON (see the module doc); ``ConfigError`` 400 on anything else."""
    try:
        value = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except RecursionError:
        raise ConfigError(f"Malformed JSON body: nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeError) as e:  # JSONDecodeError, invalid UTF-8, int digits limit
        raise ConfigError(f"Malformed JSON body: {e}") from e
    check_tree(value)
    return value


# --------------------------------------------------------------------------------------------
# Typed parameters (each raises FieldError naming the field)


def object_body(body: Any, what: str) -> dict[str, Any]:
    """The body as a JSON object; 400 saying what it must hold otherwise."""
    if not isinstance(body, dict):
        raise ConfigError(f"Body must be an object with {what}")
    return body


def uuid_param(value: Any, field: str) -> str:
    """A uuid parameter: a string in UUID form (lower-cased, as every stored uuid is)."""
    return str(check_uuid(value, field)).lower()


def optional_uuid(value: Any, field: str) -> str | None:
    """A uuid parameter that may be absent (None or '')."""
    if value is None or value == "":
        return None
    return uuid_param(value, field)


def id_list(value: Any, field: str, limit: int = MAX_IDS) -> list[str]:
    """A list of uuids: a JSON list of uuid strings or a comma-separated string; at most ``limit``."""
    items = csv_list(value) if isinstance(value, str) else value
    if not isinstance(items, list):
        raise FieldError(field, f"expected a list of uuids, got {show(value)}")
    if len(items) > limit:
        raise FieldError(field, f"{len(items)} ids, at most {limit} are allowed per request")
    return [uuid_param(x, f"{field}[{i}]") for i, x in enumerate(items)]


def str_param(value: Any, field: str, max_len: int = MAX_PARAM) -> str:
    """A string parameter of at most ``max_len`` characters."""
    if not isinstance(value, str):
        raise FieldError(field, f"expected a string, got {show(value)}")
    if len(value) > max_len:
        raise FieldError(field, f"{len(value)} characters, at most {max_len} are allowed")
    return value


def str_list(value: Any, field: str, limit: int = MAX_FIELDS, max_len: int = 1024) -> list[str]:
    """A list of strings (a JSON list or a comma-separated string), bounded in count and length."""
    items = csv_list(value) if isinstance(value, str) else value
    if not isinstance(items, list):
        raise FieldError(field, f"expected a list of strings, got {show(value)}")
    if len(items) > limit:
        raise FieldError(field, f"{len(items)} entries, at most {limit} are allowed")
    return [str_param(x, f"{field}[{i}]", max_len) for i, x in enumerate(items)]


def int_param(value: Any, field: str, lo: int, hi: int) -> int:
    """An integer in ``[lo, hi]``: a JSON integer or an integral decimal string (not a bool)."""
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,18}\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(field, f"expected an integer {lo}-{hi}, got {show(value)}")
    if not lo <= value <= hi:
        raise FieldError(field, f"must be an integer {lo}-{hi}, got {value}")
    return value


def bool_param(value: Any) -> bool:
    """The client's booleans: native in JSON bodies, ``True``/``False`` strings in queries."""
    if isinstance(value, bool):
        return value
    return isinstance(value, str) and "true" in value.lower()


def fq_name_param(value: Any, field: str) -> list[str]:
    """An fq_name to look up: a non-empty list of strings within the name limits."""
    if not isinstance(value, list) or not value or not all(isinstance(x, str) for x in value):
        raise FieldError(field, f"expected a list of strings, got {show(value)}")
    check_fq_name_limits(value, field)
    return list(value)


def fq_name_str_param(value: Any, field: str) -> list[str]:
    """An fq_name given as ``a:b:c`` (query strings, ``fq_names``)."""
    return fq_name_param(str_param(value, field).split(":"), field)
