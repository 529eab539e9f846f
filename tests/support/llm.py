"""A small OpenAI-compatible chat server on 127.0.0.1 that answers deterministically.

A test double at the HTTP boundary for fact extraction: membank's real client talks
to it over HTTP exactly as it would to a model. Its rules:

* ``membank_facts`` (the extraction prompt): every sentence of every user message is
  a fact. A user message with ``MALFORMED`` gets text that is not JSON; with
  ``SHAPELESS``, JSON of the wrong shape; with ``EXPENSIVE``, a usage of 1,000,000
  tokens.
* ``membank_decisions``: per fact, in order: a fact starting ``BAD`` gets an unknown
  event; a fact equal to a memory shown is ``NONE``; ``forget <key>`` is ``DELETE``
  of the memory whose text starts ``<key> is``; ``<key> is <value>`` is ``UPDATE``
  of the memory with the same key; anything else is ``ADD``. A fact ``MALFORMED
  DECISIONS`` makes the whole answer not JSON.

``reject`` makes it answer 401 quoting the bearer token it got (as some servers do).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ChatDouble"]


def _facts(payload: dict[str, Any]) -> tuple[str | None, int]:
    """The answer text of a facts call, and the tokens it reports (0: computed)."""
    users = [m["content"] for m in payload["messages"] if m["role"] == "user"]
    text = "\n".join(users)
    if "MALFORMED" in text and "MALFORMED DECISIONS" not in text:
        return "these are the facts: {not json", 0
    if "SHAPELESS" in text:
        return json.dumps({"facts": "a string, not a list"}), 0
    facts = [s.strip() for s in re.split(r"[.\n]+", text) if s.strip()]
    return json.dumps({"facts": facts}), 1_000_000 if "EXPENSIVE" in text else 0


def _key(text: str) -> str | None:
    return text.split(" is ", 1)[0].strip().lower() if " is " in text else None


def _decisions(payload: dict[str, Any]) -> str:
    memories, facts = payload["memories"], payload["facts"]
    if "MALFORMED DECISIONS" in facts:
        return "I decided: {{{"
    out = []
    for i, fact in enumerate(facts):
        entry: dict[str, Any] = {"fact": i, "id": None, "text": None}
        same = next((m for m in memories if m["text"] == fact), None)
        keyed = next((m for m in memories if _key(m["text"]) == _key(fact) and _key(fact)), None)
        if fact.startswith("BAD"):
            entry.update(event="EXPLODE", reason="nonsense")
        elif same is not None:
            entry.update(event="NONE", id=same["id"], reason="already known")
        elif fact.lower().startswith("forget "):
            key = fact[len("forget ") :].strip().lower()
            gone = next((m for m in memories if _key(m["text"]) == key), None)
            entry.update(event="DELETE" if gone else "NONE", reason=f"the user retracted {key}")
            entry["id"] = gone["id"] if gone else None
        elif keyed is not None:
            entry.update(event="UPDATE", id=keyed["id"], text=fact, reason="a newer value")
        else:
            entry.update(event="ADD", text=fact, reason="a new fact")
        out.append(entry)
    return json.dumps({"decisions": out})


class ChatDouble:
    """Serves ``POST /v1/chat/completions`` on a free loopback port, in a thread."""

    def __init__(self) -> None:
        self.reject = False
        self.calls = 0
        self.authorization: list[str | None] = []
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                double.calls += 1
                token = self.headers.get("Authorization")
                double.authorization.append(token)
                if double.reject:
                    self._send(401, {"error": {"message": f"invalid api key: {token}"}})
                    return
                name = body["response_format"]["json_schema"]["name"]
                prompt = json.loads(body["messages"][-1]["content"])
                tokens = 0
                if name == "membank_facts":
                    content, tokens = _facts(prompt)
                else:
                    content = _decisions(prompt)
                size = len(body["messages"][-1]["content"]) // 4 + len(content or "") // 4
                self._send(
                    200,
                    {
                        "id": "chatcmpl-double",
                        "object": "chat.completion",
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"total_tokens": tokens or size},
                    },
                )

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ChatDouble:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
