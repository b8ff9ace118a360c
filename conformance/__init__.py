"""nlmmap.conformance: the conformance suite (Hypothesis stateful testing against the reference
model, adapters for any implementation). Not built yet: see the project's open issues."""
