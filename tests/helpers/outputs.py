"""Output folders no command can write into: each case makes one under tmp_path and returns (the folder,
the words the refusal must contain). Used by every command's output test (run_transfer's in
tests/engine/test_trial_rules.py, the others' in tests/bad_inputs/test_bad_outputs.py)."""
import os


def _output_under_a_file(tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("x")
    return tmp_path / "a_file" / "o", "is a file, not a folder"


def _output_is_a_file(tmp_path, monkeypatch):
    (tmp_path / "o").write_text("x")
    return tmp_path / "o", "is a file, not a folder"


def _output_on_a_read_only_filesystem(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    # root may write anywhere a mode bit forbids, not on a read-only mount: that is what access(2) says
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.path.abspath(p) == str(ro) else real(p, mode, **kw))
    return ro / "out", "is not writable (read-only filesystem or no permission)"


def _output_is_a_symlink_loop(tmp_path, monkeypatch):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    return tmp_path / "loop" / "o", "symbolic link that leads nowhere"


def _output_is_a_dangling_symlink(tmp_path, monkeypatch):
    (tmp_path / "o").symlink_to(tmp_path / "gone")
    return tmp_path / "o", "symbolic link that leads nowhere"


def _output_name_too_long(tmp_path, monkeypatch):
    return tmp_path / ("x" * 300) / "o", "longer than the filesystem allows"


UNUSABLE_OUTPUTS = [_output_under_a_file, _output_is_a_file, _output_on_a_read_only_filesystem, _output_is_a_symlink_loop,
           _output_is_a_dangling_symlink, _output_name_too_long]
OUTPUT_IDS = [c.__name__.strip("_") for c in UNUSABLE_OUTPUTS]
