"""Faust stream apps of the Kafka runtime."""
