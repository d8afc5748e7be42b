"""`phasegrpo export --push-to-hub`: the Hub API answered by a local HTTP server that records
every request (HF_ENDPOINT points there), so the real huggingface_hub client runs unchanged."""

import base64
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tiny_run import make_run

from phasegrpo import export

REPO = "someone/phasegrpo-tiny"


class FakeHub(BaseHTTPRequestHandler):
    """The few Hub routes upload_folder uses; every file is told to upload inline ("regular")."""

    requests: list = []

    def log_message(self, *args):  # keep the test output clean
        pass

    def _reply(self, body: dict, status: int = 200):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        FakeHub.requests.append(("POST", self.path, self.headers.get("Authorization"), body))
        endpoint = f"http://{self.headers['Host']}"
        if self.path == "/api/repos/create":
            return self._reply({"url": f"{endpoint}/{json.loads(body)['organization']}/{json.loads(body)['name']}"})
        if self.path == "/api/validate-yaml":
            return self._reply({})
        if "/preupload/" in self.path:
            files = json.loads(body)["files"]
            return self._reply({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
        if "/commit/" in self.path:
            return self._reply({"commitUrl": f"{endpoint}/{REPO}/commit/{'a' * 40}", "commitOid": "a" * 40})
        return self._reply({"error": f"unexpected {self.path}"}, 404)

    def do_GET(self):
        FakeHub.requests.append(("GET", self.path, self.headers.get("Authorization"), b""))
        return self._reply({"error": f"unexpected {self.path}"}, 404)


@pytest.fixture
def fake_hub():
    FakeHub.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def committed_files(requests) -> dict[str, bytes]:
    """path -> content of every file in the commit request (huggingface_hub's NDJSON payload)."""
    (commit,) = [body for method, path, _, body in requests if "/commit/" in path]
    files = {}
    for line in commit.decode().splitlines():
        item = json.loads(line)
        if item["key"] == "file":
            files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
    return files


def test_export_push_to_hub_creates_the_repo_and_uploads_adapter_and_card(tmp_path, fake_hub):
    run_dir = make_run(tmp_path)
    adapter_config = run_dir / "adapter" / "adapter_config.json"
    adapter_config.write_text(json.dumps({**json.loads(adapter_config.read_text()), "base_model_name_or_path": "/machine/cache"}))
    (run_dir / "adapter" / "README.md").unlink()  # as an older run left it: push gives it a card
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    env.update(HF_ENDPOINT=fake_hub, HF_TOKEN="hf_test_token", HF_HOME=str(tmp_path / "hf-home"),
               PYTHONPATH=str(Path(export.__file__).resolve().parents[1]))
    result = subprocess.run([sys.executable, "-m", "phasegrpo", "export", str(run_dir), "--push-to-hub", REPO],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"Uploaded the adapter to {fake_hub}/{REPO}" in result.stdout
    create = [json.loads(body) for _, path, _, body in FakeHub.requests if path == "/api/repos/create"]
    assert [(item["organization"], item["name"], item["type"]) for item in create] == [("someone", "phasegrpo-tiny", "model")]
    writes = [auth for method, _, auth, _ in FakeHub.requests if method == "POST"]
    assert len(writes) >= 3 and all(auth == "Bearer hf_test_token" for auth in writes)
    files = committed_files(FakeHub.requests)
    assert set(files) == {"adapter_config.json", "adapter_model.safetensors", "README.md"}
    assert files["adapter_model.safetensors"] == (run_dir / "adapter" / "adapter_model.safetensors").read_bytes()
    assert json.loads(files["adapter_config.json"])["base_model_name_or_path"] == str(tmp_path / "base")
    assert "## Curriculum" in files["README.md"].decode()


def test_push_folder_uploads_a_merged_folder(tmp_path, fake_hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    folder = tmp_path / "merged"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / ".hidden.tmp").write_text("not shared")
    url = export.push_folder(folder, REPO, endpoint=fake_hub)
    assert url == f"{fake_hub}/{REPO}"
    assert set(committed_files(FakeHub.requests)) == {"config.json"}


@pytest.mark.parametrize("repo", ["no-namespace", "a/b/c", "/name"])
def test_a_repo_id_without_namespace_is_refused(tmp_path, monkeypatch, repo):
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    with pytest.raises(ValueError, match="NAMESPACE/NAME"):
        export.push_folder(tmp_path, repo)


def test_train_with_push_to_hub_uploads_the_adapter_after_training(tmp_path, tiny, fake_hub, monkeypatch):
    import huggingface_hub.constants
    from test_training import completion_length_reward, tiny_config

    from phasegrpo.training import train

    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", fake_hub)
    model, tokenizer = tiny
    config = tiny_config(tmp_path, max_steps=1, push_to_hub=REPO)
    result = train(config, model=model, tokenizer=tokenizer, show_progress=False,
                   reward_functions={"completion_length_reward": completion_length_reward})
    files = committed_files(FakeHub.requests)
    assert set(files) == {path.name for path in result.adapter_dir.iterdir()}  # TRL saves the tokenizer there too
    assert json.loads(files["adapter_config.json"])["base_model_name_or_path"] == "tiny"
    assert "## Curriculum" in files["README.md"].decode()
    assert files["adapter_model.safetensors"] == (result.adapter_dir / "adapter_model.safetensors").read_bytes()


def test_train_with_push_to_hub_refuses_to_start_when_not_logged_in(tmp_path, monkeypatch):
    import huggingface_hub.constants
    from test_training import tiny_config

    from phasegrpo.training import train

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(PermissionError, match=r"run `hf auth login` \(or set HF_TOKEN\)"):
        train(tiny_config(tmp_path, push_to_hub=REPO), show_progress=False)
    assert not (tmp_path / "run").exists()  # failed before anything was written
