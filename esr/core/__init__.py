"""The pure core: the scenario model, simulated time, arrivals, journeys, buckets, assertions, verdicts.

Nothing here reads a clock, the environment or the network: time comes in as an argument, so
every rule can be tested in virtual time. The runtimes (`esr.engine`, `esr.producers`,
`esr.stream_apps`, `esr.replay`) are adapters around it.
"""
