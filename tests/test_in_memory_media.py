"""An in-memory server's media live in a temporary folder that goes with it: nothing is left orphaned."""

from __future__ import annotations

from pathlib import Path

from tests.test_server import Running, fetch


def test_an_in_memory_server_keeps_media_in_a_temporary_folder_removed_at_exit(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("accounts:\n  bcrypt_rounds: 4\n")
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


def test_an_in_memory_server_honours_a_media_root_the_deployer_set(tmp_path):
    configured = tmp_path / "kept-media"
    config = tmp_path / "config.yaml"
    config.write_text(f"media:\n  root: {configured}\naccounts:\n  bcrypt_rounds: 4\n")
    running = Running("--port", "0", "--config", str(config))
    try:
        named = running.wait_for(r"media go to MEDIA_ROOT (\S+) and stay there after exit").group(1)
        assert named == str(configured)
        url = running.wait_for(r"listening on (http://\S+)").group(1)
        assert fetch(url + "/api/health/")[0] == 200
        assert "temporary folder" not in running.text()
    finally:
        code = running.stop()
    assert code == 0
