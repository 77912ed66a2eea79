"""`crowe inspect`: what an artifact is, for a person (text) or a program (JSON).

The artifact must be intact (container, manifest and member hashes); signatures are reported one
by one, each with whether it verifies, rather than refused as a whole, so that an officer can see
who signed what before deciding.
"""
from __future__ import annotations

from crowe.compiler.artifact.verify import judge_signatures, load_trust, open_artifact


def describe(path: str, trust_dir: str | None = None) -> dict:
    art = open_artifact(path)
    m = art.manifest
    keys = load_trust(trust_dir) if trust_dir is not None else None
    sigs = []
    for i, (e, problem) in enumerate(judge_signatures(art, keys), 1):
        trusted = keys.get(e["keyid"]) if keys is not None else None
        status = "refused" if problem else "verified" if keys is not None else "intact"
        sigs.append({"index": i, "name": trusted.name if trusted else e["name"],
                     "role": e["role"], "keyid": e["keyid"], "payload_type": e["payload_type"],
                     "status": status, "reason": problem})
    return {
        "artifact": path, "manifest_sha256": art.digest,
        "policy": m["policy"], "compiler": m["compiler"], "toolchain": m["toolchain"],
        "universe": m["universe"], "warmup": m["warmup"], "max_warmup": m.get("max_warmup"),
        "params": m["params"], "market": m["market"], "reasons": m["reasons"],
        "members": [{"name": n, **m["members"][n]} for n in sorted(m["members"])],
        "signatures": sigs, "trust": trust_dir,
    }


def render(info: dict) -> str:
    p, tc, u = info["policy"], info["toolchain"], info["universe"]
    lines = [f"{p['name']} {p['version']}  (owner {p['owner']})"]
    if p.get("description"):
        lines.append(f"  {p['description'].strip()}")
    syms = " ".join(u["symbols"])
    lines += [
        f"  artifact   {info['artifact']}",
        f"  manifest   sha256 {info['manifest_sha256']}",
        f"  compiler   {info['compiler']['name']} {info['compiler']['version']} "
        f"(source sha256 {info['compiler']['source_sha256'][:16]})",
        f"  toolchain  jax {tc['jax']}, jaxlib {tc['jaxlib']}, "
        f"{'x64' if tc['x64'] else 'x64 OFF'}, platforms {', '.join(tc['platforms'])}, "
        f"XLA_FLAGS {tc['xla_flags']!r}",
        f"  universe   {len(u['symbols'])} symbols ({'from data' if u['symbols_from'] == 'data' else 'listed'}), "
        f"bar {u['bar']}: {syms}",
        f"  warm-up    {info['warmup']} bars ({info['max_warmup']} at the parameters' maxima)",
        "  parameters" + ("" if info["params"] else "  none"),
    ]
    for q in info["params"]:
        doc = f"  {q['doc']}" if q.get("doc") else ""
        lines.append(f"    {q['name']:<16} {q['dtype']:<5} {q['default']!s:<8} "
                     f"[{q['lo']}, {q['hi']}]{doc}")
    lines.append("  members")
    for mem in info["members"]:
        lines.append(f"    {mem['name']:<22} {mem['size']:>8}  sha256 {mem['sha256']}")
    lines.append("  signatures" + ("" if info["signatures"] else "  none"))
    for s in info["signatures"]:
        state = {"verified": "verified against the trust store",
                 "intact": "intact (pass --trust to check the key and role)",
                 "refused": f"REFUSED: {s['reason']}"}[s["status"]]
        lines.append(f"    {s['index']}. {s['name']} as {s['role']}  key {s['keyid'][:16]}  "
                     f"{state}")
    return "\n".join(lines)
