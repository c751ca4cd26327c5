"""Load a script from tools/ as a module for tests (tools/ is a folder of scripts, not a package)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def load_tool(name: str):
    """Import ``tools/<name>.py`` once and return the module (tools/ goes on sys.path, as when run)."""
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return sys.modules[name]
