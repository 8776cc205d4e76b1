"""The error base classes the services raise (ServiceUnavailable, for an unavailable dependency, is in outages).

Plain Python, importable from any module (models, services, authentication) without loading DRF.
"""

from __future__ import annotations


class InputError(Exception):
    """A request the caller can correct: ``errors`` maps field names to messages.

    The base of every service's input error (scoring, tiers, campaigns, staff members). API
    views let it through: ``api_exception_handler`` answers it like a validation error, 400
    ``invalid`` with the errors by field; forms and the admin show ``errors`` next to the fields.
    """

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors
