"""Real-time picking: the streaming engine and its packet sources (file replay, SeedLink)."""
