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
