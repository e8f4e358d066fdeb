"""Kafka runtime producers: the clock, the bot workers, and run requests."""
