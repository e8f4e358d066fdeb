"""Log format readers. Each module has `NAME`, `sniff(head) -> bool` and `parse(lines, source)`;
see `esr.replay.record` for what they yield."""
