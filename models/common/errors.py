"""Errors in a client's input, raised by families' serving code. The API maps them to 422 / 413;
`field` says where (e.g. "inputs[2].image"), so the client can find the bad item.

`kind` sorts input faults for the per-item answer (a family's `item_faults`, models/contract.py):
    shape       the item is not of the family's input form (not an object, a field missing or unknown)
    value       the item has the form, but a value in it cannot be used (an undecodable image, an empty
                sentence, a number out of range or not finite, a feature missing from one record)
    too_large   a value over a size limit (answered 413)
    parameters  the request's `parameters` (always fails the whole request: it applies to every item)
"""

SHAPE, VALUE, TOO_LARGE, PARAMETERS = "shape", "value", "too_large", "parameters"
ITEM_FAULT_KINDS = frozenset({SHAPE, VALUE, TOO_LARGE})  # what a family may declare as answered per item


class InputError(ValueError):
    status = 422
    default_kind = VALUE

    def __init__(self, field: str, message: str, kind: str | None = None):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        # A fault in `parameters` is one of the request's, whichever item's preprocessing found it.
        self.kind = PARAMETERS if field.split(".")[0] == PARAMETERS else kind or self.default_kind


class InputTooLarge(InputError):
    status = 413
    default_kind = TOO_LARGE


class DatasetError(ValueError):
    """A record of an uploaded dataset that a family cannot use. `entry` names where it is (an archive
    entry); the API answers 422 with the message and the entry."""

    where = "entry '{}'"

    def __init__(self, message: str, entry: str | None = None):
        super().__init__(f"{self.where.format(entry)}: {message}" if entry else message)
        self.entry = entry
        self.message = message


class DatasetTooLarge(DatasetError):
    """A dataset that would unpack (or inflate in memory) past the byte budget the API gave the family's
    loader; refused from the sizes an archive declares, before anything is inflated. The API answers 413."""


class MetadataMismatch(ValueError):
    """A version's metadata contradicts its ONNX signature (metadata.labels names 3 classes, the output
    has 10): every answer would carry the wrong labels, so the API refuses the upload (422) rather than
    serve it. Raised by a family's make_spec; its other ValueErrors only keep the task-level API off."""


class ParityError(RuntimeError):
    """ONNX Runtime and PyTorch disagree about a freshly exported model: the run fails rather than
    register a version that would serve something other than what was trained and evaluated."""


class TableError(DatasetError):
    """The same for a row of a table, where `entry` is already a place such as "line 14"."""

    where = "{}"
