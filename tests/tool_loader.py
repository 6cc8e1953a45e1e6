"""Load a script under tools/ as a module, for tests of the repository's own checks and builders."""
import importlib.util, sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_tool(name: str) -> ModuleType:
    "tools/<name>.py as a module, registered in sys.modules (dataclasses and worker processes look it up by name)."
    spec = importlib.util.spec_from_file_location(f"medrepro_tool_{name}", ROOT / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod
