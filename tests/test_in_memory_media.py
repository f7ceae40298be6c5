"""An in-memory server's media live in a temporary folder that goes with it: nothing is left orphaned."""

from __future__ import annotations

from pathlib import Path

from tests.test_server import Running, fetch


def test_an_in_memory_server_keeps_media_in_a_temporary_folder_removed_at_exit(tmp_path):
    configured = tmp_path / "media"
    config = tmp_path / "config.yaml"
    config.write_text(f"media:\n  root: {configured}\naccounts:\n  bcrypt_rounds: 4\n")
    running = Running("--port", "0", "--config", str(config))
    try:
        folder = Path(running.wait_for(r"media go to the temporary folder (\S+),").group(1))
        url = running.wait_for(r"listening on (http://\S+)").group(1)
        assert fetch(url + "/api/health/")[0] == 200  # up, its signal handlers installed
        assert folder.is_dir()
    finally:
        code = running.stop()
    assert code == 0
    assert not folder.exists()
    assert not (configured / "videos").exists()  # the configured MEDIA_ROOT stays for a lasting database
