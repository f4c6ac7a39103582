"""Errors in a client's input, raised by families' serving code. The API maps them to 422 / 413;
`field` says where (e.g. "inputs[2].image"), so the client can find the bad item."""


class InputError(ValueError):
    status = 422

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InputTooLarge(InputError):
    status = 413


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
