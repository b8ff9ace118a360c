"""nlmmap.spec: the protocol written once.

The kernel ABI (:mod:`.abi`), netlink messages (:mod:`.netlink`), the one error type
(:mod:`.errors`), the adapter wire protocol (:mod:`.adapter`), and the transition system with its
invariants (:mod:`.protocol`) from which the executable model, the z3 proofs and the diagrams are
derived. Nothing here imports the model, the implementation or the suite.
"""
