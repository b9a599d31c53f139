"""House rules that keep the two halves apart (STYLE.md #1)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPORT = r"^\s*(?:import|from)\s+({})\b"


def offenders(folder: str, modules: str) -> list[str]:
    pat = re.compile(IMPORT.format(modules), re.M)
    return [f"{p.relative_to(ROOT)}: {m.group(0).strip()}" for p in (ROOT / folder).rglob("*.py")
            for m in pat.finditer(p.read_text())]


def test_engine_never_imports_blender():
    assert offenders("engine", "bpy|mathutils|bpy_extras") == []


def test_addon_core_is_pure():
    assert offenders("addon/core", "bpy|mathutils|bpy_extras") == []


def test_addon_never_imports_the_engine_stack():
    # Blender's Python has numpy, not torch/mediapipe: those live in the engine's own environment
    assert offenders("addon", "torch|mediapipe|cv2|av|anny|roma|scipy") == []


def test_engine_never_imports_the_data_kit():
    # dataset readers, metrics and the renderer live in scripts/vmkit; the shipped engine is inference only
    assert offenders("engine", r"scripts|vmkit") == []
    assert not (ROOT / "engine" / "mocap").exists() and not (ROOT / "engine" / "metrics.py").exists()


def test_no_sys_path_edits():
    pat = re.compile(r"sys\.path\.(?:insert|append|extend)\(")
    hits = [str(p.relative_to(ROOT)) for folder in ("engine", "addon", "scripts", "tests")
            for p in (ROOT / folder).rglob("*.py") if pat.search(p.read_text())]
    assert hits == [], "import as packages (python -m scripts.NAME; pytest.ini's pythonpath) instead"


def test_engine_functions_stay_short():
    # the engine house: stages and helpers, no 150-line functions (issue: engine house)
    import ast

    long = []
    for p in (ROOT / "engine").rglob("*.py"):
        for n in ast.walk(ast.parse(p.read_text())):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 80:
                long.append(f"{p.relative_to(ROOT)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)")
    assert long == []
