"""Live input and output: camera streams as a source kind; events, chapters and status files."""
