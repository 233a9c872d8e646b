class ServiceError(Exception):
    """A request that cannot be carried out, with a message fit for the person who asked."""

    status_code = 400


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409


class Invalid(ServiceError):
    status_code = 422
