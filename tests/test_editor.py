"""conf/datasets/tpch.yml opened in the YAML language server that editors run (VS Code's YAML
extension, Neovim, JetBrains; tests/editor, installed by make test from its lock): the
schema the file names on its first line gives key completion, descriptions and inline errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent
SERVER = PROJECT_DIR / "tests" / "editor" / "node_modules" / "yaml-language-server" / "bin"
DATASET = PROJECT_DIR / "conf" / "datasets" / "tpch.yml"


class LanguageServer:
    """A yaml-language-server over stdio, spoken to in LSP (JSON-RPC with Content-Length)."""

    def __init__(self, root: Path):
        node = shutil.which("node")
        assert node, "node is missing: make system-deps installs nodejs"
        assert SERVER.exists(), "yaml-language-server is missing: make test installs it"
        self.process = subprocess.Popen(
            [node, str(SERVER / "yaml-language-server"), "--stdio"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.next_id = 0
        self.notifications: list[dict] = []
        self.request(
            "initialize", {"processId": None, "rootUri": root.as_uri(), "capabilities": {}}
        )
        self.notify("initialized", {})
        self.notify("workspace/didChangeConfiguration", {"settings": {"yaml": SETTINGS}})

    def send(self, message: dict) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def receive(self) -> dict:
        length = 0
        while line := self.process.stdout.readline().strip():
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        assert length, "the language server stopped"
        return json.loads(self.process.stdout.read(length))

    def notify(self, method: str, params: dict) -> None:
        self.send({"method": method, "params": params})

    def request(self, method: str, params: dict) -> dict:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        while True:
            message = self.receive()
            if message.get("id") == self.next_id and "method" not in message:
                assert "error" not in message, message["error"]
                return message["result"]
            self._answer(message)

    def _answer(self, message: dict) -> None:
        """The server's own requests (its settings, ...) answered; its notifications kept."""
        if "id" in message and "method" in message:
            items = message.get("params", {}).get("items", [])
            result = [SETTINGS if i.get("section") == "yaml" else None for i in items] or None
            self.send({"id": message["id"], "result": result})
        elif "method" in message:
            self.notifications.append(message)

    def diagnostics(self, uri: str, timeout: float = 30) -> list[dict]:
        """The diagnostics the server publishes for ``uri`` once it has validated it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for note in self.notifications:
                if note["method"] == "textDocument/publishDiagnostics":
                    if note["params"]["uri"] == uri:
                        return note["params"]["diagnostics"]
            self._answer(self.receive())
        raise AssertionError(f"no diagnostics for {uri}")

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


SETTINGS = {"validate": True, "completion": True, "hover": True, "schemaStore": {"enable": False}}


@pytest.fixture
def server():
    started = LanguageServer(PROJECT_DIR)
    yield started
    started.close()


def _open(server: LanguageServer, text: str, path: Path = DATASET) -> str:
    """``text`` opened as ``path`` (its $schema path resolves from the file's folder)."""
    uri = path.as_uri()
    document = {"uri": uri, "languageId": "yaml", "version": 1, "text": text}
    server.notify("textDocument/didOpen", {"textDocument": document})
    return uri


def test_the_editor_completes_an_entity_s_keys_from_the_schema(server):
    lines = DATASET.read_text().splitlines()
    at = lines.index("  region:") + 1
    lines.insert(at, "    ")  # the cursor on a new line inside the entity
    uri = _open(server, "\n".join(lines) + "\n")
    position = {"line": at, "character": 4}
    result = server.request(
        "textDocument/completion", {"textDocument": {"uri": uri}, "position": position}
    )
    items = result["items"] if isinstance(result, dict) else result
    offered = {item["label"] for item in items}
    assert {"partition", "parent", "schema_evolution", "dates", "source"} <= offered
    assert "snapshot" not in offered and "key" not in offered  # already there
    described = {item["label"]: item.get("documentation") for item in items}
    assert "bad file" in json.dumps(described["schema_evolution"])  # the model's description


def test_the_editor_underlines_a_misspelled_key_and_a_wrong_choice(server):
    text = DATASET.read_text()
    assert server.diagnostics(_open(server, text)) == []  # the demo's declaration is clean
    broken = text.replace("    grain: One row per region.", "    grian: One row per region.", 1)
    broken = broken.replace("snapshot: {vanished: keep}", "snapshot: {vanished: kept}", 1)
    found = server.diagnostics(_open(server, broken, DATASET.with_name("edited.yml")))
    messages = " | ".join(d["message"] for d in found)
    assert "grian" in messages and "not allowed" in messages
    assert "kept" in messages or "Value is not accepted" in messages
    lines = {d["range"]["start"]["line"] for d in found}
    assert broken.splitlines()[min(lines)].strip().startswith(("snapshot", "grian"))
