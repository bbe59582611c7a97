"""A scripted OpenAI-compatible server on 127.0.0.1 for the tests of ``smollab.llm``'s users.

``respond(path, body)`` returns ``(text, finish_reason)`` for a 200 reply, in the shape of
``/v1/chat/completions`` (a ``messages`` body) or ``/v1/completions`` (a ``prompt`` body), or an int
for an HTTP error status. Every request's ``(path, body)`` is recorded in ``bodies``.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedServer:
    def __init__(self, respond):
        self.respond, self.bodies = respond, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.bodies.append((self.path, body))
                answer = server.respond(self.path, body)
                if isinstance(answer, int):
                    self.send_response(answer)
                    self.end_headers()
                    return
                text, finish = answer
                choice = {"text": text} if "prompt" in body else {"message": {"role": "assistant", "content": text}}
                payload = json.dumps({"choices": [{**choice, "finish_reason": finish}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def shutdown(self) -> None:
        self.http.shutdown()
