"""Reading media: decoding (PyAV), aligning frames with the audio around them, live streams."""
