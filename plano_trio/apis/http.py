"""The one HTTP header type every layer passes around.

`(name, value)` as raw bytes, names lowercased: the form hypercorn hands the
app, our HTTP/1.1 client sends, and no layer needs to re-encode.
"""

from __future__ import annotations

Header = tuple[bytes, bytes]
