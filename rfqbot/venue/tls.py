"""The one place that turns ``venue.ca_file`` into an SSL context, or says why it cannot.

The config check and the REST client both load the file the same way, so a file that passes
``check-config`` is one the client can use; and when the file changed in between (the simulator
rewrote it, an operator copied the wrong one), the client fails with the same words instead of
a traceback.
"""

from __future__ import annotations

import re
import ssl

_SSL_SOURCE = re.compile(r"\s*\(_ssl\.c:\d+\)$")  # where in CPython it failed: noise to a user


def ca_context(path: str) -> ssl.SSLContext:
    """A default (verifying) client context trusting the system CAs plus the CAs in ``path``.

    Raises ``ValueError`` with a message a user can act on when the file is missing, unreadable
    or not a PEM CA certificate bundle.
    """
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:  # before OSError: SSLError is one
        said = _SSL_SOURCE.sub("", str(exc))
        raise ValueError(f"CA file {path!r} is not a PEM CA certificate bundle (SSL said: {said}); "
                         "point it at the PEM file of the CA that signed the venue's certificate "
                         "(for the simulator, the \"CA file:\" line rfqbot sim printed)") from None
    except OSError as exc:
        raise ValueError(f"CA file {path!r} cannot be read ({exc.strerror or exc}); "
                         "check the path and that rfqbot's user may read it") from None
    return context
