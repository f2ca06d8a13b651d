"""Every refused command raises a DomainError whose message says why, in staff words."""


class DomainError(Exception):
    """A command the rules refuse. The message is shown to staff as it is."""


class NotFound(DomainError):
    """The thing named does not exist."""


class CampaignRuleViolation(DomainError):
    """A campaign command refused by the lifecycle rules."""


class InvalidContent(DomainError):
    """A message body that breaks the channel's rules (length, segments, empty)."""


class OptOutRuleViolation(DomainError):
    """An opt-out that the opt-out settings do not allow (e.g. permanent phone opt-out)."""
