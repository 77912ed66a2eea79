"""The policy artifact format: one file that a risk officer approves and a runtime verifies.

    container    the zip layout, written and read byte for byte, and the canonical JSON inside
    manifest     what the manifest records, and the members and platform names it uses
    keys         Ed25519 key files: generate, load, key ids
    signatures   DSSE signatures over the manifest's digest, each in a role
    trust        the trust store: which keys may sign, in which roles
    verify       fail-closed verification for a stage, and the refusals it raises

Building an artifact from a compiled step is `crowe.compiler.export`; turning a verified one into
a runnable engine is `crowe.runtime.artifact`. JAX is imported only to check the toolchain.
"""
