"""The ``crowe`` command: one click group, one subgroup or command per area.

Exit codes: 0 success, 1 the command ran and found problems, 2 it could not run (bad input,
unusable file, usage error). A user never sees a traceback: a :class:`UserError` prints
``error: <message>``, and anything unexpected prints ``error: internal error: <message>``; both
exit 2. An artifact that is refused (:class:`~crowe.runtime.verify.ArtifactError`) prints its
one-line reason and exits with the error's own code: 1 when the artifact was examined and fails
verification, 2 when it could not be examined at all. Add a command with ``@main.command()`` or a group with ``@main.group()``; raise
:class:`UserError` (or an error listed in ``USER_ERROR_NAMES``) for anything the user can fix.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import click

from crowe.compiler.artifact.signatures import ROLES, TRUST_ROLES
from crowe.compiler.artifact.verify import STAGES
from crowe.dsl.quantity import QuantityError, check_ascii_digits

EXIT_OK, EXIT_PROBLEMS, EXIT_ERROR = 0, 1, 2


class UserError(Exception):
    """Something the user can fix; the message is shown as ``error: <message>``."""


# The errors a user can fix, by module: each is recognised once its module is loaded (an error
# of a module that was never imported cannot have been raised), so that a command imports only
# what it runs: `crowe --help`, `crowe trust`, `crowe journal verify` start without JAX.
USER_ERROR_NAMES: tuple[tuple[str, str], ...] = (
    ("crowe.runtime.data", "DataError"), ("crowe.runtime.run", "RunError"),
    ("crowe.runtime.engine", "ParamError"), ("crowe.compiler.artifact.keys", "KeyFileError"),
    ("crowe.compiler.artifact.trust", "TrustStoreError"),
    ("crowe.runtime.paper.errors", "PaperError"), ("crowe.runtime.paper.journal", "JournalError"),
    ("crowe.runtime.paper.checkpoint", "CheckpointError"),
    ("crowe.runtime.paper.commands", "FeedSpecError"),
    ("crowe.runtime.quantity_cli", "DurationError"), ("crowe.runtime.htmlreport", "ReportError"),
    ("crowe.runtime.sweep", "GridError"), ("crowe.runtime.walkforward", "WalkForwardError"),
    ("crowe.runtime.stress", "StressError"))


def user_errors() -> tuple[type[Exception], ...]:
    """`UserError` and every error of `USER_ERROR_NAMES` whose module is loaded."""
    found = [getattr(sys.modules[m], name) for m, name in USER_ERROR_NAMES if m in sys.modules]
    return (UserError, *found)


def _artifact_error() -> type[Exception] | None:
    module = sys.modules.get("crowe.compiler.artifact.verify")
    return getattr(module, "ArtifactError", None)


class _Guarded(click.Group):
    """The one place that turns exceptions into a one-line message and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort,
                BrokenPipeError):
            raise
        except Exception as e:  # noqa: BLE001 - the guard exists to catch everything else
            refused = _artifact_error()
            if refused is not None and isinstance(e, refused):
                _fail(str(e), e.exit_code)
            if isinstance(e, user_errors()):
                _fail(str(e))
            _fail(f"internal error: {e or type(e).__name__}")


def _fail(message: str, code: int = EXIT_ERROR) -> None:
    click.echo(f"error: {message or 'unknown'}", err=True)
    raise click.exceptions.Exit(code)


@click.group(cls=_Guarded, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="crowe-policy", prog_name="crowe",
                      message="%(prog)s %(version)s")
def main() -> None:
    """Crowe Logic policy runtime."""


@main.group()
def data() -> None:
    """Inspect bar files."""


@data.command("check")
@click.argument("path", type=click.Path(dir_okay=True, path_type=str))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
def data_check(path: str, fmt: str) -> None:
    """Validate the bar file PATH and report every problem: each bad row, each instrument
    with zero or missing volume on most bars (its orders could not fill), and each split-like
    jump (an unadjusted split: `crowe data import --adjust splits`).

    Exits 0 when the file loads with no issues, 1 when it loads with issues, 2 when it cannot
    be used.
    """
    from .data import load_bars
    _, report = load_bars(path)
    if fmt == "json":
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(report.render_text())
        if len(report.issues) > 20:
            click.echo("  (use --format json for every issue)")
    raise click.exceptions.Exit(EXIT_OK if report.ok else EXIT_PROBLEMS)


@data.command("import")
@click.argument("src", metavar="SRC", type=click.Path(path_type=str))
@click.option("-o", "--out", required=True, metavar="BARS.parquet", help="Bar file to write.")
@click.option("--layout", type=click.Choice(["auto", "long", "wide"]), default="auto",
              show_default=True, help="long: a row per time and symbol; wide: a close column "
              "per symbol; auto: long when there is a symbol column or --name.")
@click.option("--ts", "ts_col", metavar="COL", help="The time column (default: ts, date, ...).")
@click.option("--symbol", "symbol_col", metavar="COL", help="The symbol column (ticker, ...).")
@click.option("--open", "open_col", metavar="COL")
@click.option("--high", "high_col", metavar="COL")
@click.option("--low", "low_col", metavar="COL")
@click.option("--close", "close_col", metavar="COL")
@click.option("--volume", "volume_col", metavar="COL")
@click.option("--adj-close", "adj_close_col", metavar="COL",
              help="The adjusted close column (default: `Adj Close`, `adj_close`, ...).")
@click.option("--name", metavar="SYMBOL", help="The symbol of a one-instrument file.")
@click.option("--tz", metavar="ZONE",
              help="The zone of times written without an offset (default UTC).")
@click.option("--ts-format", metavar="FORMAT", help="strptime format of the times, e.g. %Y%m%d.")
@click.option("--adjust", type=click.Choice(["none", "adjusted", "splits"]), default="none",
              show_default=True, help="adjusted: by the adjusted close; splits: the split-like "
              "jumps that `crowe data check` finds.")
@click.option("--force", is_flag=True, help="Overwrite BARS.parquet.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Output format.")
def data_import(src, out, layout, ts_col, symbol_col, open_col, high_col, low_col, close_col,
                volume_col, adj_close_col, name, tz, ts_format, adjust, force, fmt) -> None:
    """Import the CSV or Parquet file SRC as a bar file, then check it as `crowe data check`
    does (exit 0 clean, 1 written with issues, 2 not written)."""
    from .data import load_bars
    from .dataimport import import_bars
    columns = {"ts": ts_col, "symbol": symbol_col, "open": open_col, "high": high_col,
               "low": low_col, "close": close_col, "volume": volume_col,
               "adj_close": adj_close_col}
    done = import_bars(src, out, columns, layout, name, tz, ts_format, adjust, force)
    _, report = load_bars(out)
    if fmt == "json":
        click.echo(json.dumps({"out": out, "layout": done.layout, "rows": done.table.num_rows,
                               "notes": done.notes, "check": report.to_json()}, indent=2))
    else:
        click.echo(f"wrote {out}: {done.table.num_rows:,} rows ({done.layout} source)")
        for note in done.notes:
            click.echo(f"note: {note}")
        click.echo(report.render_text())
    raise click.exceptions.Exit(EXIT_OK if report.ok else EXIT_PROBLEMS)


def _positive(value: str | None) -> float | None:
    """A positive, finite number in ASCII digits (None stays None)."""
    if value is None:
        return None
    try:
        check_ascii_digits(value)
        number = float(value)
    except QuantityError as e:
        raise click.BadParameter(f"{e}; {e.help}") from None
    except ValueError:
        raise click.BadParameter(f"`{value}` is not a number") from None
    if not (math.isfinite(number) and number > 0):
        raise click.BadParameter(f"`{value}` is not a positive, finite number")
    return number


def _cash(ctx, param, value: str) -> float:
    """`--cash`: a positive, finite amount in ASCII digits (`nan`, `inf`, `0`, `-1` refused)."""
    try:
        check_ascii_digits(value)
        amount = float(value)
    except QuantityError as e:
        raise click.BadParameter(f"{e}; {e.help}") from None
    except ValueError:
        raise click.BadParameter(f"`{value}` is not a number; give the initial capital, e.g. "
                                 "`--cash 1e6`") from None
    if not (math.isfinite(amount) and amount > 0):
        raise click.BadParameter(f"`{value}` is not a positive, finite amount; give the initial "
                                 "capital, e.g. `--cash 1e6`")
    return amount


@main.command()
@click.argument("policy", type=click.Path(dir_okay=False, path_type=str))
@click.option("--data", type=click.Path(path_type=str), default=None,
              help="Parquet bar file (default: the bundled data that covers the universe).")
@click.option("--start", default=None,
              help="First date to trade and to count metrics from, e.g. 2005-01-01; the bars "
                   "before it warm the policy up without trading.")
@click.option("--end", default=None, help="Last date to simulate (inclusive).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Override a policy parameter; repeatable.")
@click.option("--cash", default="1e6", show_default=True, callback=_cash,
              help="Initial capital: a positive, finite amount.")
@click.option("--trust", "trust_dir", default=None, metavar="DIR",
              help="For an artifact: check its signatures against this trust store.")
@click.option("--out", "out_dir", default=None, help="Results directory (default out/POLICY).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--report", "report", is_flag=True,
              help="Also write report.html next to the results (as `crowe report` does).")
def backtest(policy, data, start, end, params, cash, trust_dir, out_dir, fmt, report) -> None:
    """Backtest POLICY on bar data and print its metrics.

    POLICY is a `.policy` source (compiled first) or a `.cpol` artifact, which is verified for
    stage sim (integrity always; its signatures, if any, against --trust when given) and whose
    exported step runs as it is.
    """
    from .commands import run_backtest
    from .run import default_out, usable_out_dir
    out_dir = usable_out_dir(out_dir or default_out(policy))
    run_backtest(policy, data, start, end, params, cash, out_dir, fmt, trust_dir, report)


@main.command("report")
@click.argument("result_dir", metavar="RESULT_DIR", type=click.Path(path_type=str))
@click.option("-o", "--output", default=None, metavar="FILE.html",
              help="Where to write the report (default: RESULT_DIR/report.html).")
@click.option("--benchmark", default="buy_and_hold", show_default=True,
              metavar="SYMBOL|buy_and_hold|none",
              help="Compare against one symbol of the run's data, the equal-weighted buy and "
                   "hold of its universe, or nothing.")
def report_cmd(result_dir, output, benchmark) -> None:
    """Write one self-contained HTML report (charts inline, nothing loaded from the network)
    of the backtest results in RESULT_DIR."""
    from .htmlreport import write_report
    click.echo(f"wrote {write_report(result_dir, output, benchmark, warn=_warn)}")


def _warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


# -- research: sweeps, walk-forward, stress -----------------------------------------------------

_DATA = click.option("--data", type=click.Path(path_type=str), default=None,
                     help="Parquet bar file (default: the bundled data that covers the universe).")
_GRID = click.option("--grid", "grid", multiple=True, metavar="NAME=LO:HI:STEP|NAME=v1,v2",
                     help="A parameter axis (both ends included); repeatable. Values must lie "
                          "in the parameter's declared range.")


@main.command()
@click.argument("policy", type=click.Path(dir_okay=False, path_type=str))
@_GRID
@_DATA
@click.option("--start", default=None, help="First date counted; earlier bars warm up.")
@click.option("--end", default=None, help="Last date simulated (inclusive).")
@click.option("--metric", default="sharpe", show_default=True, help="Metric that ranks runs.")
@click.option("--out", "out_dir", default=None, help="Results directory (default out/POLICY/sweep).")
@click.option("--cash", default="1e6", show_default=True, callback=_cash, help="Initial capital.")
@click.option("--equity", is_flag=True, help="Also write each run's per-bar equity.")
@click.option("--per-instrument", is_flag=True,
              help="Run each instrument of the data as its own one-instrument universe.")
@click.option("--top", default=5, show_default=True, type=click.IntRange(1), help="Runs shown.")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where batches run: this machine, or Ray tasks (the `ray` extra).")
@click.option("--address", default=None, metavar="ADDRESS",
              help="With --backend ray: the Ray cluster to use (e.g. auto, HOST:6379); "
                   "default: a local Ray on every core, started for the sweep.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def sweep(policy, grid, data, start, end, metric, out_dir, cash, equity, per_instrument, top,
          backend, address, fmt) -> None:
    """Backtest every combination of the --grid axes in batches through one compiled
    program; write one Parquet row per run with every metric, print the best runs and the
    overfitting statistics (PSR, DSR, PBO)."""
    from .research import run_sweep
    from .run import default_out, usable_out_dir
    out_dir = usable_out_dir(out_dir or str(Path(default_out(policy)) / "sweep"))
    run_sweep(policy, grid, data, start, end, metric, out_dir, cash, equity, per_instrument,
              top, fmt, backend, address)


@main.command()
@click.argument("policy", type=click.Path(dir_okay=False, path_type=str))
@_GRID
@_DATA
@click.option("--train", required=True, help="Training window, e.g. 3y, 18mo, 26w, 90d.")
@click.option("--test", required=True, help="Test window that follows it, e.g. 6mo.")
@click.option("--step", default=None, help="How far each fold moves (default: --test).")
@click.option("--anchored", is_flag=True, help="Every training window starts at the first.")
@click.option("--start", default=None, help="Where the first training window starts.")
@click.option("--end", default=None, help="Last date used (inclusive).")
@click.option("--select", default="sharpe", show_default=True,
              help="Metric that chooses each fold's parameters in sample.")
@click.option("--out", "out_dir", default=None,
              help="Results directory (default out/POLICY/walkforward).")
@click.option("--cash", default="1e6", show_default=True, callback=_cash, help="Initial capital.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def walkforward(policy, grid, data, train, test, step, anchored, start, end, select, out_dir,
                cash, fmt) -> None:
    """Walk-forward: choose the best --grid combination on each training window, trade it
    on the next test window with the book carried across folds; print per-fold choices, in-
    and out-of-sample metrics and the stitched out-of-sample result."""
    from .research import run_walkforward
    from .run import default_out, usable_out_dir
    out_dir = usable_out_dir(out_dir or str(Path(default_out(policy)) / "walkforward"))
    run_walkforward(policy, grid, data, start, end, train, test, step, anchored, select,
                    out_dir, cash, fmt)


@main.command()
@click.argument("policy", type=click.Path(dir_okay=False, path_type=str))
@click.option("--scenario", required=True, metavar="NAME",
              help="An episode (gfc2008, flash2010, covid2020) or a shock: gap:-10%, "
                   "vol:3x:20, drought:20, halt:5.")
@_DATA
@click.option("--start", default=None, help="First date traded; earlier bars warm up.")
@click.option("--end", default=None, help="Last date simulated (inclusive).")
@click.option("--at", default=None, help="Date of the shock (default: the middle of the run).")
@click.option("--symbols", default=None, metavar="A,B",
              help="Instruments the shock hits (default: all).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Override a policy parameter; repeatable.")
@click.option("--cash", default="1e6", show_default=True, callback=_cash, help="Initial capital.")
@click.option("--out", "out_dir", default=None, help="Results directory (default out/POLICY/stress).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
def stress(policy, scenario, data, start, end, at, symbols, params, cash, out_dir, fmt) -> None:
    """Replay a real episode of the data, or shock the bars and compare with the unshocked
    run: drawdown, worst bar, bars to recover, and which limits and rules were in force."""
    from .research import run_stress
    from .run import default_out, usable_out_dir
    out_dir = usable_out_dir(out_dir or str(Path(default_out(policy)) / "stress"))
    run_stress(policy, scenario, data, start, end, at, symbols, params, cash, out_dir, fmt)


# -- artifacts: keys, signatures, trust, verification ----------------------------------------

_ROLE = click.Choice(ROLES)
_FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                       show_default=True, help="Output format.")


@main.command()
@click.option("--out", "out", required=True, metavar="KEY",
              help="Private key file to write (mode 0600); the public key goes to KEY.pub.")
@click.option("--name", default=None, help="The signer's name (default: KEY's file name).")
@click.option("--force", is_flag=True, help="Overwrite existing key files.")
def keygen(out, name, force) -> None:
    """Create an Ed25519 signing key pair."""
    from .commands import run_keygen
    run_keygen(out, name, force)


@main.command()
@click.argument("artifact", type=click.Path(dir_okay=False, path_type=str))
@click.option("--key", "key", required=True, metavar="KEY", help="Private key to sign with.")
@click.option("--role", required=True, type=_ROLE, help="The role this signature approves in.")
def sign(artifact, key, role) -> None:
    """Add a signature to ARTIFACT (only its signatures.json changes)."""
    from .commands import run_sign
    run_sign(artifact, key, role)


@main.group()
def trust() -> None:
    """Manage a trust store: the keys allowed to sign, and their roles."""


@trust.command("add")
@click.argument("public_key", metavar="KEY.pub", type=click.Path(dir_okay=False, path_type=str))
@click.option("--role", "roles", required=True, multiple=True, type=click.Choice(TRUST_ROLES),
              help="A role the key may sign in (`journal`: a paper runtime's journal key); "
                   "repeatable.")
@click.option("--trust", "trust_dir", required=True, metavar="DIR", help="Trust store.")
def trust_add(public_key, roles, trust_dir) -> None:
    """Trust KEY.pub for the given roles (replacing its earlier entry, if any)."""
    from .commands import run_trust_add
    run_trust_add(public_key, roles, trust_dir)


@trust.command("list")
@click.option("--trust", "trust_dir", required=True, metavar="DIR", help="Trust store.")
@_FORMAT
def trust_list(trust_dir, fmt) -> None:
    """List the trusted keys with their names and roles."""
    from .commands import run_trust_list
    run_trust_list(trust_dir, fmt)


@main.command("verify")
@click.argument("artifact", type=click.Path(path_type=str))
@click.option("--trust", "trust_dir", default=None, metavar="DIR",
              help="Trust store (required for paper and live).")
@click.option("--stage", type=click.Choice(STAGES), default="sim", show_default=True,
              help="sim: no signature needed; paper: an author; live: author plus risk by "
                   "another key.")
@click.option("--state-dir", default=None, metavar="DIR",
              help="Refuse a version lower than the highest run from this directory.")
@click.option("--allow-rollback", is_flag=True, help="Accept a lower version anyway.")
@click.option("--record", is_flag=True,
              help="Record this version as run from --state-dir (what a runtime does).")
@_FORMAT
def verify_cmd(artifact, trust_dir, stage, state_dir, allow_rollback, record, fmt) -> None:
    """Verify ARTIFACT for a stage. Exits 0 when it may run, 1 when it is refused, 2 when it
    cannot be examined (not an artifact, truncated, unreadable, bad trust store or flags)."""
    from .commands import run_verify
    run_verify(artifact, trust_dir, stage, state_dir, allow_rollback, record, fmt)


@main.command()
@click.argument("artifact", type=click.Path(path_type=str))
@click.option("--trust", "trust_dir", default=None, metavar="DIR",
              help="Also say whether each signature verifies against this trust store.")
@_FORMAT
def inspect(artifact, trust_dir, fmt) -> None:
    """Show what ARTIFACT is: policy, toolchain, universe, parameters, members, signatures."""
    from .commands import run_inspect
    run_inspect(artifact, trust_dir, fmt)


# -- paper trading ----------------------------------------------------------------------------

class _PaperGroup(click.Group):
    """`crowe paper ARTIFACT ...` runs; `crowe paper kill|resume|status ...` manage a run."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "run", self.commands["run"], args
        return super().resolve_command(ctx, args)


@main.group(cls=_PaperGroup)
def paper() -> None:
    """Paper-trade a signed artifact bar by bar, or manage a run.

    \b
    crowe paper ARTIFACT --trust DIR --journal-key KEY --state-dir DIR
                --feed replay:PATH|stdin [--speed X]
    crowe paper kill --state-dir DIR [--flatten]
    crowe paper resume --state-dir DIR
    crowe paper status --state-dir DIR [--format json]
    """


@paper.command("run", hidden=True)
@click.argument("artifact", type=click.Path(dir_okay=False, path_type=str))
@click.option("--trust", "trust_dir", required=True, metavar="DIR", help="Trust store.")
@click.option("--journal-key", "journal_key", required=True, metavar="KEY",
              help="Private key that signs every journal record; the trust store must hold its "
                   "public key in the role `journal`.")
@click.option("--state-dir", required=True, metavar="DIR",
              help="Journal, checkpoint and controls.")
@click.option("--feed", "feed", required=True, metavar="SPEC", help="`replay:PATH` or `stdin`.")
@click.option("--speed", default=None, callback=lambda ctx, param, value: _positive(value),
              help="Replay at this many times real time (default: as fast as possible).")
@click.option("--max-gap", default="10d", show_default=True,
              help="Halt when the next bar is more than this long after the last one (a stale "
                   "feed); long enough for market closures; `none` turns it off.")
@click.option("--max-ahead", default="1d", show_default=True,
              help="Refuse a bar dated more than this ahead of the wall clock; `none` turns "
                   "it off.")
@click.option("--allow-rollback", is_flag=True, help="Run a lower version than one already run.")
def paper_run(artifact, trust_dir, journal_key, state_dir, feed, speed, max_gap, max_ahead,
              allow_rollback) -> None:
    """Paper-trade ARTIFACT: it must verify for stage `paper` (an `author` signature from the
    trust store). Every bar is journaled (hash-chained, each record signed with
    --journal-key) and the state checkpointed in --state-dir; a restart resumes where it
    stopped. SIGUSR1 halts, SIGUSR2 flattens."""
    from .artifact import load_artifact
    from .paper.commands import journal_signer, record_version, run_paper
    signer, trusted = journal_signer(journal_key, trust_dir)
    loaded = load_artifact(artifact, trust_dir, "paper", state_dir, allow_rollback)
    raise click.exceptions.Exit(run_paper(
        loaded.engine, loaded.verified.digest, state_dir, feed, speed, max_gap, max_ahead,
        on_start=lambda: record_version(loaded.verified.artifact, state_dir, allow_rollback),
        signer=signer, trusted=trusted))


@paper.command("kill")
@click.option("--state-dir", required=True, metavar="DIR")
@click.option("--flatten", is_flag=True, help="Send only position-reducing orders, to zero.")
@click.option("--reason", default="", help="Recorded with the override.")
def paper_kill(state_dir, flatten, reason) -> None:
    """Halt (or flatten) the policy from the next bar, until `crowe paper resume`."""
    from .paper.commands import kill
    kill(state_dir, flatten, reason)


@paper.command("resume")
@click.option("--state-dir", required=True, metavar="DIR")
def paper_resume(state_dir) -> None:
    """Clear a kill-switch override."""
    from .paper.commands import resume
    resume(state_dir)


@paper.command("status")
@click.option("--state-dir", required=True, metavar="DIR")
@_FORMAT
def paper_status(state_dir, fmt) -> None:
    """Equity, exposure, trading state and the last bar, from the saved state."""
    from .paper.commands import status
    status(state_dir, fmt)


@main.group()
def journal() -> None:
    """Check and export a paper journal."""


@journal.command("verify")
@click.argument("state_dir", metavar="DIR", type=click.Path(path_type=str))
@click.option("--trust", "trust_dir", required=True, metavar="DIR",
              help="Trust store holding the runtime's key in the role `journal`.")
def journal_verify(state_dir, trust_dir) -> None:
    """Check the hash chain, every record's signature by a trusted `journal` key, and that the
    checkpoint holds the state journaled at its bar; name the first bad record. Exit 1 when
    something does not hold."""
    from .paper.commands import journal_verify as run
    raise click.exceptions.Exit(run(state_dir, trust_dir))


@journal.command("export")
@click.argument("state_dir", metavar="DIR", type=click.Path(path_type=str))
@click.option("--out", required=True, metavar="FILE.parquet")
def journal_export(state_dir, out) -> None:
    """Write the journal as a Parquet table for analysis."""
    from .paper.commands import journal_export as run
    run(state_dir, out)


# -- editor and authoring tools ---------------------------------------------------------------

@main.command("schema")
@click.option("-o", "--out", default=None, metavar="FILE.json",
              help="Write the schema to this file (default: print it).")
def schema_cmd(out) -> None:
    """Print the JSON Schema of a policy file, for YAML editors: put
    `# yaml-language-server: $schema=FILE.json` at the top of a policy."""
    from crowe.dsl.json_schema import schema_text
    text = schema_text()
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise UserError(f"`{out}` cannot be written: {e.strerror or e}") from None
    click.echo(out)


@main.command("fmt")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 when a file is not in the canonical layout.")
def fmt_cmd(files, check) -> None:
    """Rewrite policy FILES (or the .policy files under a directory) in the canonical layout,
    keeping every comment; what a policy means never changes."""
    from .authoring import run_fmt
    raise click.exceptions.Exit(run_fmt(files, check))


@main.command("test")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
def test_cmd(paths) -> None:
    """Run policy unit tests: each `*.test.yaml` file under PATHS (default: here) names a
    policy, a small table of bars, and what the policy must decide at chosen bars (trading
    state, target weights, orders, reason flags). The format is in the README."""
    from .authoring import run_tests
    raise click.exceptions.Exit(run_tests(paths))


@main.command("lsp")
def lsp_cmd() -> None:
    """Run the policy language server on stdin/stdout, for editors: diagnostics as you type,
    hover, completion and go to definition. Needs `pip install 'crowe-policy[lsp]'`."""
    import importlib.util
    if importlib.util.find_spec("pygls") is None:
        raise UserError("the language server needs pygls: pip install 'crowe-policy[lsp]'")
    from crowe.dsl.lsp import serve
    serve()
