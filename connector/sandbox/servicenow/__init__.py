"""A ServiceNow instance simulator: the Table API, OAuth and rate limits as pysnow and requests see them.

Modules: :mod:`.app` (routing, auth, control routes), :mod:`.tableapi` (the verbs and paging
headers), :mod:`.query` and :mod:`.predicates` (encoded queries), :mod:`.select` (access paths),
:mod:`.tables` (storage and indexes), :mod:`.counts` (watermark totals), :mod:`.render` (wire
representation), :mod:`.writes` and :mod:`.rules` (the write path and business rules),
:mod:`.seed` (reference data), :mod:`.auth`, :mod:`.ratelimit`, :mod:`.dates`, :mod:`.settings`.
"""

from connector.sandbox.servicenow.app import ServiceNowApp
from connector.sandbox.servicenow.errors import ServiceNowError

__all__ = ["ServiceNowApp", "ServiceNowError"]
