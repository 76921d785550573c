"""What is made of the encoders' results: fusion into one record, shots, highlights, summaries."""
