"""`crowe lsp`: the language server, through a real LSP session over pipes, and its analysis."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import queue
from pathlib import Path

import pytest

from crowe.dsl.fmt import format_source
from crowe.dsl.lsp import Document, char_column, utf16_column

pytest.importorskip("pygls")

ROOT = Path(__file__).parent.parent
EXAMPLE = (ROOT / "policies" / "cs_mom_v1.policy").read_text("utf-8")
BROKEN = EXAMPLE.replace("  mu_1d:  ic * score * vol\n", "  mu_1d:  ic * score * vlo\n")
URI = "file:///work/cs_mom_v1.policy"


class Client:
    """A minimal JSON-RPC client speaking LSP's Content-Length framing over the server's pipes."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "crowe.dsl.lsp"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.messages: queue.Queue = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            self.messages.put(json.loads(out.read(length)))

    def send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def request(self, method: str, params: dict) -> dict:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        reply = self.wait(lambda m: m.get("id") == self.next_id)
        assert "result" in reply, f"{method} answered {reply}"
        return reply["result"]

    def notify(self, method: str, params: dict) -> None:
        self.send({"method": method, "params": params})

    def wait(self, match, timeout: float = 60) -> dict:
        while True:
            m = self.messages.get(timeout=timeout)
            if match(m):
                return m

    def diagnostics(self) -> list[dict]:
        return self.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics")[
            "params"]["diagnostics"]


@pytest.fixture(scope="module")
def client():
    c = Client()
    init = c.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    caps = init["capabilities"]
    assert caps["hoverProvider"] and caps["definitionProvider"] and caps["completionProvider"]
    c.notify("initialized", {})
    yield c
    c.request("shutdown", None)
    c.notify("exit", None)
    c.proc.wait(timeout=30)
    c.proc.stdout.close()
    c.proc.stdin.close()
    c.proc.stderr.close()


def position(text: str, needle: str, offset: int = 0) -> dict:
    for i, line in enumerate(text.split("\n")):
        if needle in line:
            return {"line": i, "character": line.index(needle) + offset}
    raise AssertionError(needle)


def test_a_session_reports_diagnostics_and_clears_them_when_fixed(client):
    client.notify("textDocument/didOpen", {"textDocument": {
        "uri": URI, "languageId": "yaml", "version": 1, "text": BROKEN}})
    [d] = client.diagnostics()
    start = position(BROKEN, "vlo")
    assert d["range"] == {"start": start, "end": dict(start, character=start["character"] + 3)}
    assert d["code"] == "E0401" and d["severity"] == 1 and d["source"] == "crowe"
    assert "unknown name `vlo`" in d["message"] and "did you mean `vol`?" in d["message"]
    client.notify("textDocument/didChange", {
        "textDocument": {"uri": URI, "version": 2}, "contentChanges": [{"text": EXAMPLE}]})
    assert client.diagnostics() == []


def test_hover_completion_and_definition_over_the_wire(client):
    doc = {"uri": URI}
    hover = client.request("textDocument/hover", {"textDocument": doc,
                                                  "position": position(EXAMPLE, "stdev(", 1)})
    assert "stdev(x, n)" in hover["contents"]["value"]
    where = position(EXAMPLE, "ret(close, lookback)", 12)
    found = client.request("textDocument/definition", {"textDocument": doc, "position": where})
    assert found["uri"] == URI and found["range"]["start"] == position(EXAMPLE, "lookback:")
    sizing = position(EXAMPLE, "  lambda: 0.3")
    items = client.request("textDocument/completion",
                           {"textDocument": doc, "position": dict(sizing, character=2)})
    labels = {i["label"] for i in items["items"]}
    assert {"vol_target", "vol_window"} <= labels and "budget" not in labels
    edits = client.request("textDocument/formatting", {
        "textDocument": doc, "options": {"tabSize": 2, "insertSpaces": True}})
    [edit] = edits
    assert edit["range"]["start"] == {"line": 0, "character": 0}
    assert edit["newText"] == format_source(EXAMPLE).text
    client.notify("textDocument/didClose", {"textDocument": doc})
    assert client.diagnostics() == []


def lines(text: str) -> list[str]:
    return text.split("\n")


def at(text: str, needle: str, offset: int = 0) -> tuple[int, int]:
    p = position(text, needle, offset)
    return p["line"], p["character"]


def labels(text: str, line: int, character: int) -> list[str]:
    return [i["label"] for i in Document(URI, text).completion(line, character)]


def test_hover_says_what_a_name_or_setting_is():
    doc = Document(URI, EXAMPLE)
    text = lambda *where: doc.hover(*at(EXAMPLE, *where))["contents"]["value"]  # noqa: E731
    assert "per-bar cross-section, float, dimensionless; reads 126 past bars" in \
        text("  mom:", 3)
    assert "mom = ret(close, lookback) - ret(close, skip)" in text("  mom:", 3)
    assert "default 126, range [63, 252]" in text("  lookback:", 3)
    assert "momentum formation window in bars" in text("  lookback:", 3)
    assert "Gross cap" in text("  gross_max", 3) and "a fraction between 0 and 10" in \
        text("  gross_max", 3)
    assert "a setting of `kelly_tempered`" in text("  lambda:", 3)
    assert "bar field, a price" in text("close * volume", 1)
    assert "the probability that the return beats the cost" in text("prob_edge >=", 2)
    assert doc.hover(*at(EXAMPLE, "owner: CR-008", 9)) is None
    assert "Kelly-tempered sizing" in text("method: kelly_tempered", 9)


def test_completion_offers_what_is_in_scope():
    top = labels("policy: x\nver", 1, 3)
    assert "version" in top and "features" in top and "policy" not in top
    typed = EXAMPLE.replace("  score:  zscore(mom)", "  score:  zscore(mo")
    line, _ = at(typed, "  score:")
    assert labels(typed, line, len(lines(typed)[line])) == ["mom"]
    gate = EXAMPLE.replace("prob_edge >= prob_edge_min", "prob_")
    line, _ = at(gate, "  edge:")
    assert labels(gate, line, len(lines(gate)[line])) == ["prob_edge_min", "prob_edge"]
    feature = EXAMPLE.replace("  score:  zscore(mom)", "  score:  ")
    line, _ = at(feature, "  score:")
    found = labels(feature, line, 10)
    assert {"zscore", "stdev", "close", "volume", "mom", "lookback"} <= set(found)
    assert "prob_edge" not in found and "score" not in found     # not in features; not itself
    from crowe.stdlib import components as reg
    assert labels("sizing: {method: ", 0, 17) == reg.SIZING.names()    # from the registry
    assert "kelly_tempered" in reg.SIZING.names()
    flow = "sizing: {method: kelly_tempered, "
    assert labels(flow, 0, len(flow)) == ["vol_target", "vol_window", "lambda"]
    assert labels("stand_down:\n  data_gap:\n    ", 2, 4) == ["action", "cooldown",
                                                               "max_missing"]
    limit = labels("execution:\n  algo: limit\n  ", 2, 2)
    assert "limit_offset" in limit and "algo" not in limit
    assert "limit_offset" not in labels("execution:\n  algo: market\n  ", 2, 2)
    rule = "stand_down:\n  data_gap: {max_missing: 5%, action: "
    assert labels(rule, 1, len(lines(rule)[1])) == ["exclude", "halt", "flatten", "reduce"]


def test_the_views_of_the_book_are_in_scope_when_the_registry_has_them():
    from crowe.dsl.lsp import HOLDINGS
    if not HOLDINGS:
        pytest.skip("this registry has no views of the book")
    feature = EXAMPLE.replace("  score:  zscore(mom)", "  score:  ")
    line, _ = at(feature, "  score:")
    assert set(HOLDINGS) <= set(labels(feature, line, 10))
    for name in HOLDINGS:
        text = EXAMPLE.replace("  score:  zscore(mom)", f"  score:  zscore({name})")
        hover = Document(URI, text).hover(*at(text, f"zscore({name})", 8))
        assert "the book at the decision" in hover["contents"]["value"]


def test_definition_of_features_and_parameters():
    doc = Document(URI, EXAMPLE)
    found = doc.definition(*at(EXAMPLE, "zscore(mom)", 8))
    assert found["range"]["start"] == position(EXAMPLE, "mom:")
    assert doc.definition(*at(EXAMPLE, "ret(close, 1)", 5)) is None    # a bar field


def test_ranges_count_utf16_code_units():
    """An astral character is two UTF-16 code units: the range of a diagnostic on it spans
    two, and so does every column after it on the line."""
    broken = EXAMPLE.replace("  mu_1d:  ic * score * vol\n", "  mu_1d:  \U0001f600 * vol\n")
    [d] = Document(URI, broken).diagnostics()
    start = position(broken, "\U0001f600")
    assert d["code"] == "E0201"
    assert d["range"] == {"start": start, "end": dict(start, character=start["character"] + 2)}
    line = lines(broken)[start["line"]]
    assert utf16_column(line, line.index("vol") + 1) == line.index("vol") + 1
    assert char_column(line, utf16_column(line, line.index("vol") + 1)) == line.index("vol")
