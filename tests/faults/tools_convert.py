"""tools/convert.py as an importable module (its main), for tests that call the CLI in-process."""
import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("_tools_convert", Path(__file__).resolve().parents[2] / "tools" / "convert.py")
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
main = _module.main
