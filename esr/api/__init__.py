"""The ESR server: launch, watch and abort runs over HTTP (`esr serve`)."""
