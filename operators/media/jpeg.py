"""The picture a search result shows: one small JPEG per segment, made at ingest from a frame the
decoder already produced (no second decode when a result is listed).

Not ``Segment.thumbnails``: those are the shot detector's 64x36 pictures, never stored.
"""

from __future__ import annotations

import io

import numpy as np

from operators.records import Segment

THUMBNAIL_BOX = (256, 144)
"""Largest width and height of a result's picture (aspect kept): a card's size on a laptop,
~5-8 KB at ``THUMBNAIL_QUALITY``, so a million segments keep ~6 GB of them."""
THUMBNAIL_QUALITY = 75


def thumbnail_jpeg(segment: Segment) -> bytes | None:
    """JPEG bytes of the segment's frame nearest its middle, or None when it has no frame."""
    if not len(segment.frames):
        return None
    from PIL import Image

    middle = (segment.span.start_ns + segment.span.end_ns) // 2
    i = int(np.argmin(np.abs(np.asarray(segment.frame_pts_ns, np.int64) - middle)))
    picture = Image.fromarray(np.ascontiguousarray(segment.frames[i]))
    picture.thumbnail(THUMBNAIL_BOX, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return buffer.getvalue()
