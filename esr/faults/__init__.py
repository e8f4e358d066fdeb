"""Applying faults: the fault proxy (built-in faults on the wire), the injector and the guard
that start and recover the system's own faults, and the plan that resolves a scenario's
`failure_injection` against them. The grammar of a fault entry is `esr.core.fault_spec`."""
