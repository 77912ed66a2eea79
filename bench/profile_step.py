"""Where the time of one simulated bar goes: a per-kernel profile of `policies/cs_mom_v1.policy`.

Runs the compiled backtest (`make_runner`; or the jitted `bar_update`, with ``--mode step``) under
`jax.profiler`, sums the time of every XLA kernel (fusion, copy, sort, dot, ...) over the traced
bars, and attributes each kernel to the lines of the project's source that produced it (from
the stack frames that JAX records in the HLO metadata). Prints one JSON object: the kernels and
the source lines, most expensive first, in microseconds per bar (calls per bar times the
median duration of one call, which is robust to preemption by other processes).

The profiler adds a little overhead per kernel, so the total is above the plain run time; use
the shares to rank hot spots, and `backtest_throughput.py` / `step_latency.py` for the numbers.

    python bench/profile_step.py                  # scan, N = 500, 300 bars traced
    python bench/profile_step.py --mode step      # bar_update called bar by bar, state donated
    python bench/profile_step.py --mode step_nodonate
    python bench/profile_step.py --quick          # N = 50
"""
from __future__ import annotations

import collections
import glob
import gzip
import json
import re
import shutil
import statistics
import tempfile

import common
from common import POLICIES, log

import jax


def hlo_index(text: str):
    """(instruction -> (shape, opcode, stack frame id), frame -> list of 'file:line function')."""
    files, funcs, locs, frames = {}, {}, {}, {}
    section = None
    instrs = {}
    for line in text.splitlines():
        head = line.strip()
        if head in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
            section = head
            continue
        if section and head and head[0].isdigit():
            i, rest = head.split(" ", 1)
            i = int(i)
            if section == "FileNames":
                files[i] = rest.strip('"')
            elif section == "FunctionNames":
                funcs[i] = rest.strip('"')
            elif section == "FileLocations":
                f = re.search(r"file_name_id=(\d+) function_name_id=(\d+) line=(\d+)", rest)
                locs[i] = (int(f[1]), int(f[2]), int(f[3]))
            else:
                f = re.search(r"file_location_id=(\d+) parent_frame_id=(\d+)", rest)
                frames[i] = (int(f[1]), int(f[2]))
            continue
        if head.startswith("%") or head.startswith("ROOT %"):
            section = None
            m = re.match(r"(?:ROOT )?%(\S+) = (\S+) (\S+?)\((.*?)\)", head)
            if m:
                sf = re.search(r"stack_frame_id=(\d+)", head)
                operands = re.findall(r"%([\w.\-]+)", m[4])
                instrs[m[1]] = (m[2], m[3], int(sf[1]) if sf else None, operands)
        elif head:
            section = None

    def stack(fid):
        out, seen = [], set()
        while fid and fid in frames and fid not in seen:
            seen.add(fid)
            loc, parent = frames[fid]
            fi, fn, ln = locs.get(loc, (0, 0, 0))
            path = files.get(fi, "?")
            short = path.split("/work/main/")[-1] if "/work/main/" in path else \
                "/".join(path.split("/")[-2:])
            out.append(f"{short}:{ln} {funcs.get(fn, '?')}")
            if parent == fid:
                break
            fid = parent
        return out
    return instrs, stack


def fused_frames(text: str, name: str):
    """The stack frame ids inside the computation a fusion calls (its own metadata is often
    only the root's)."""
    m = re.search(rf"%{re.escape(name)} = .*?calls=%([\w.\-]+)", text)
    if not m:
        return []
    body = re.search(rf"^%{re.escape(m[1])} .*?\{{\n(.*?)^\}}", text, re.S | re.M)
    return [int(x) for x in re.findall(r"stack_frame_id=(\d+)", body[1])] if body else []


def _ours(frames):
    return [f for f in frames if f.startswith(("compiler/", "stdlib/", "runtime/"))]


def source_of(name, instrs, stack, text, depth: int = 0):
    """The project's frames behind an instruction: its own metadata, else the fused
    computation's, else (a kernel XLA split off, such as a partial reduction) its first
    operand's."""
    _, _, sf, operands = instrs[name]
    ours = _ours(stack(sf)) if sf else []
    if not ours:
        inner = fused_frames(text, name)
        if inner:
            ours = _ours(stack(max(inner, key=lambda i: len(_ours(stack(i))))))
    if not ours and depth < 4:
        for o in operands:
            if o in instrs and instrs[o][1] not in ("parameter", "constant"):
                ours = source_of(o, instrs, stack, text, depth + 1)
                if ours:
                    break
    return ours


def profile(n: int, bars_traced: int, mode: str, seed: int,
            policy: str = "cs_mom_v1.policy") -> dict:
    from crowe.runtime.backtest import make_runner
    from crowe.runtime.engine import bar_at, panel_bars
    from synthetic import make_panel
    warm = 260                              # past the warm-up (VaR window 250)
    t = warm + bars_traced
    panel = make_panel(n, t, seed)
    engine, _, _ = common.engine_for(POLICIES / policy, panel.symbols)
    params, carry = engine.params(), engine.init_carry()
    bars = jax.block_until_ready(panel_bars(panel))
    tmp = tempfile.mkdtemp(prefix="crowe-prof-")
    if mode == "scan":
        runner = make_runner(engine)
        head = jax.tree_util.tree_map(lambda a: a[:warm], bars)
        tail = jax.tree_util.tree_map(lambda a: a[warm:], bars)
        c, _ = runner(params, carry, head)
        jax.block_until_ready(runner(params, c, tail))        # compiled for the tail's shape
        fn, args = common.backtest_program(runner, params, c, tail)
        text = fn.lower(*args).compile().as_text()
        jax.profiler.start_trace(tmp, create_perfetto_trace=True)
        jax.block_until_ready(runner(params, c, tail))
        jax.profiler.stop_trace()
    else:
        fn = jax.jit(engine.bar_update, donate_argnums=1 if mode == "step" else ())
        per_bar = jax.block_until_ready([bar_at(bars, i) for i in range(t)])
        text = jax.jit(engine.bar_update).lower(params, carry, per_bar[0]).compile().as_text()
        c = carry
        for i in range(warm):
            c, o = fn(params, c, per_bar[i])
        jax.block_until_ready(c)
        jax.profiler.start_trace(tmp, create_perfetto_trace=True)
        for i in range(warm, t):
            c, o = fn(params, c, per_bar[i])
            jax.block_until_ready((c, o))
        jax.profiler.stop_trace()
    trace = sorted(glob.glob(f"{tmp}/**/*.trace.json.gz", recursive=True))[-1]
    events = json.load(gzip.open(trace))
    events = events["traceEvents"] if isinstance(events, dict) else events
    shutil.rmtree(tmp, ignore_errors=True)

    instrs, stack = hlo_index(text)
    durs = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X" and e.get("name") in instrs:
            durs[e["name"]].append(e.get("dur", 0))
    # per kernel: calls per bar x the median duration of one call (robust to preemption by
    # other processes, which inflates a few calls by milliseconds)
    calls = {k: len(v) for k, v in durs.items()}
    us = collections.Counter({k: statistics.median(v) * len(v) / bars_traced
                              for k, v in durs.items()})
    mean_total = sum(sum(v) for v in durs.values()) / bars_traced
    kernels, by_line = [], collections.Counter()
    for name, t_us in us.most_common():
        shape, op = instrs[name][:2]
        ours = source_of(name, instrs, stack, text)
        kernels.append({"kernel": name, "op": op, "shape": shape, "us_per_bar": t_us,
                        "calls_per_bar": calls[name] / bars_traced, "source": ours[:4]})
        by_line[ours[0] if ours else "(no source: parameter/copy/loop plumbing)"] += t_us
    total = sum(us.values())
    return {"N": n, "mode": mode, "bars_traced": bars_traced,
            "kernel_us_per_bar_total": total, "kernel_us_per_bar_total_mean": mean_total, "kernels_per_bar": sum(calls.values()) / bars_traced,
            "top_kernels": kernels[:60], "all_kernels": kernels,
            "by_source_line": [{"source": k, "us_per_bar": v, "share": v / total}
                               for k, v in by_line.most_common(30)]}


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--mode", choices=("scan", "step", "step_nodonate"), default="scan")
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--policy", default="cs_mom_v1.policy",
                   help="a policy in policies/ whose universe is from_data")
    args = p.parse_args()
    info = common.machine_info()
    n = args.n or (50 if args.quick else 500)
    bars_traced = 50 if args.quick else 300
    log(f"profiling the {args.mode} at N={n} over {bars_traced} bars")
    result = profile(n, bars_traced, args.mode, args.seed, args.policy)
    for k in result["by_source_line"][:12]:
        log(f"{k['us_per_bar']:8.1f} us/bar {100 * k['share']:5.1f}%  {k['source']}")
    common.emit("profile_step", {"policy": f"policies/{args.policy}", "quick": args.quick,
                                 "seed": args.seed, **result}, info)


if __name__ == "__main__":
    main()
