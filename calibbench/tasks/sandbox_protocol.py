"""Messages between a sandboxed program and the process that runs its tests, as lines of JSON.

The tests call the program's function through a pair of pipes, and only data comes back: nothing
the program returns can run code in the tests' process or compare equal to what it is not. A
message is one line, a JSON array whose first item is its kind: ["load"] and ["call", args,
kwargs] from the tests, ["ready"], ["returned", value] and ["raised", names, args, stopped] from
the program.

Values: None, bool, int (up to 64 bits), float (nan and the infinities included) and str are
JSON's own; any other value is an array tagged with its type: ["list", ...], ["tuple", ...],
["set", ...], ["frozenset", ...], ["deque", ...], ["dict", [key, value], ...], ["bytes", text],
["bytearray", text] (text: the bytes as Latin-1), ["complex", real, imag], ["int", hex],
["fraction", hex, hex], ["decimal", text]. A value of a subclass of these types crosses as the
type itself (a Counter as a dict, an IntEnum as an int); an iterator (a generator, a map) is
drained in the program and arrives as an iterator over its items; anything else (an object, a
function, a regular-expression match, a dict view) arrives as an `Opaque`: its repr and truth
value, equal only to itself. An exception arrives as the nearest built-in exception of its class,
built from its args.

This file also runs as source at the top of the sandbox's scripts (interpreters started with
`-I -S`, which cannot import calibbench), so it imports the standard library only.
"""

import builtins
import collections
import collections.abc
import errno
import json
import sys

KINDS = {"load": 0, "call": 2, "ready": 0, "returned": 1, "raised": 3}  # kind -> its fields


class Refused(PermissionError):
    """Raised by the sandbox's audit hook."""


class Opaque:
    """A value that is not data, as the tests see it: its repr and truth value."""

    def __init__(self, text: str, truth: bool):
        self.text, self.truth = text, truth

    def __repr__(self) -> str:
        return self.text

    def __bool__(self) -> bool:
        return self.truth


def _fraction(numerator: str, denominator: str) -> object:
    from fractions import Fraction

    return Fraction(int(numerator, 16), int(denominator, 16))


def _decimal(text: str) -> object:
    from decimal import Decimal

    return Decimal(text)


CONTAINERS = (list, tuple, set, frozenset, collections.deque)
SEQUENCES = {kind.__name__: kind for kind in CONTAINERS} | {"iterator": iter}
NUMBER, TEXT = (int, float), (str,)
SCALARS = {  # tag -> (the exact types of its items, how the value is built from them)
    "int": ((TEXT,), lambda text: int(text, 16)),
    "complex": ((NUMBER, NUMBER), complex),
    "bytes": ((TEXT,), lambda text: text.encode("latin-1")),
    "bytearray": ((TEXT,), lambda text: bytearray(text, "latin-1")),
    "fraction": ((TEXT, TEXT), _fraction),
    "decimal": ((TEXT,), _decimal),
    "opaque": ((TEXT, (bool,)), Opaque),
}


def encode(value: object) -> object:
    """`value` as JSON data (see the module docstring). Runs the value's own code where it has to
    (iterating, repr, truth value), so it raises whatever that code raises. Fractions and decimals
    exist only once their module is loaded, so `encode` does not load them."""
    if value is None or isinstance(value, (bool, float, str)):
        return value
    if isinstance(value, int):
        value = int.__int__(value)
        return value if value.bit_length() <= 64 else ["int", hex(value)]
    if isinstance(value, complex):
        return ["complex", value.real, value.imag]
    if isinstance(value, (bytes, bytearray)):
        tag = "bytearray" if isinstance(value, bytearray) else "bytes"
        return [tag, bytes(value).decode("latin-1")]
    if isinstance(value, dict):
        return ["dict", *([encode(k), encode(v)] for k, v in dict.items(value))]
    for kind in CONTAINERS:
        if isinstance(value, kind):
            return [kind.__name__, *map(encode, kind.__iter__(value))]
    fractions, decimal = sys.modules.get("fractions"), sys.modules.get("decimal")
    if fractions is not None and isinstance(value, fractions.Fraction):
        return ["fraction", hex(value.numerator), hex(value.denominator)]
    if decimal is not None and isinstance(value, decimal.Decimal):
        return ["decimal", str(value)]
    if isinstance(value, collections.abc.Iterator):
        return ["iterator", *map(encode, value)]
    return ["opaque", repr(value), bool(value)]


def decode(data: object) -> object:
    """The value `data` (JSON data from `encode`) stands for: built-in types and `Opaque` only.
    ValueError when it stands for none; TypeError for a set or dict key that is unhashable."""
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    tag, items = (data[0], data[1:]) if _tagged(data) else (None, [])
    if tag in SEQUENCES:
        return SEQUENCES[tag]([decode(item) for item in items])
    if tag == "dict" and all(isinstance(item, list) and len(item) == 2 for item in items):
        return {decode(key): decode(value) for key, value in items}
    if tag in SCALARS:
        types, build = SCALARS[tag]
        if len(items) == len(types) and all(
            type(item) in allowed for item, allowed in zip(items, types, strict=True)
        ):
            return build(*items)
    raise ValueError(f"not a value: {str(data)[:80]}")


def dumps(kind: str, *fields: object) -> bytes:
    """One message: its kind, then its fields as values (see `encode`, which may raise)."""
    return json.dumps([kind, *map(encode, fields)]).encode() + b"\n"


def loads(line: bytes) -> tuple[str, list]:
    """A message's kind and fields (decoded values). ValueError when `line` is not a message (or
    TypeError, RecursionError for a value that cannot be built)."""
    message = json.loads(line)
    if not _tagged(message) or KINDS.get(message[0]) != len(message) - 1:
        raise ValueError(f"not a message: {line[:80]!r}")
    return message[0], [decode(field) for field in message[1:]]


def raised(exc: BaseException) -> tuple[list, tuple, bool]:
    """The fields of a "raised" message for `exc`: the names of the built-in exceptions among its
    classes, nearest first, its args and whether the sandbox stopped it (see `stopped`)."""
    names = [c.__name__ for c in type(exc).__mro__ if getattr(builtins, c.__name__, None) is c]
    return names, tuple(exc.args), stopped(exc)


def rebuild(names: object, args: object, was_stopped: object) -> BaseException:
    """The exception a "raised" message stands for: the first of the built-in exceptions `names`
    that can be built from `args`; ValueError when the fields are not a "raised" message's."""
    if not (isinstance(names, list) and isinstance(args, tuple) and isinstance(was_stopped, bool)):
        raise ValueError("a raised message has names (a list), args (a tuple) and stopped (bool)")
    for name in names:
        kind = getattr(builtins, name, None) if isinstance(name, str) else None
        if isinstance(kind, type) and issubclass(kind, BaseException):
            try:
                exc = kind(*args)
            except Exception:
                continue
            break
    else:
        exc = Exception(*args)
    exc.sandbox_stopped = was_stopped
    return exc


def stopped(exc: BaseException) -> bool:
    """Whether the sandbox stopped the code that raised `exc`: its chain holds a refusal of the
    audit hook, a MemoryError, a write over the file-size limit (EFBIG), or an exception rebuilt
    from one of these (`rebuild`)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if (
            isinstance(exc, (Refused, MemoryError))
            or (isinstance(exc, OSError) and exc.errno == errno.EFBIG)
            or getattr(exc, "sandbox_stopped", False) is True
        ):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _tagged(data: object) -> bool:
    return isinstance(data, list) and len(data) > 0 and isinstance(data[0], str)
