"""Replay of archived access logs: readers per log format, merging, scheduling and judging."""
