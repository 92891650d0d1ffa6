"""The house keeps its rules (docs/development.md#layout-scripts-flat-the-library-in-one-package):
scripts flat in src/, the library in src/cxr/ with a room per concern, no module importing a
script, no circular imports, no two modules whose names differ by a suffix, every room
described, and the layout picture in docs/development.md naming every file there is."""
import ast
import re

from conftest import ROOT, SRC
from cxr.inference.bundle import imports_of

LIBRARY = SRC / "cxr"
SCRIPTS = sorted(p.stem for p in SRC.glob("*.py"))
MODULES = sorted(p for p in LIBRARY.rglob("*.py") if p.name != "__init__.py")


def dotted(path):
    return ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")


def test_the_scripts_are_the_ones_users_call_and_the_library_is_one_package():
    assert {"train", "blend", "make_folds", "make_demo", "submit", "predict", "package"} <= set(SCRIPTS)
    assert [p.name for p in SRC.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))] == ["cxr"]


def test_no_library_module_imports_a_script():
    for path in MODULES:
        scripts = {name.split(".")[0] for name in imports_of(path)} & set(SCRIPTS)
        assert not scripts, f"{dotted(path)} imports the script(s) {scripts}"


def test_no_circular_imports_among_the_library_modules():
    """The graph of imports that run at import time (function-level imports are lazy) has no cycle."""
    known = {dotted(p): p for p in LIBRARY.rglob("*.py")}
    graph = {name: {n for n in imports_of(path, lazy=False) if n in known and n != name}
             for name, path in known.items()}
    state = {}

    def visit(name, trail):
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", "circular import: " + " -> ".join(trail + [name])
        state[name] = "open"
        for other in graph[name]:
            visit(other, trail + [name])
        state[name] = "done"

    for name in graph:
        visit(name, [])


def test_no_two_modules_differ_only_by_a_suffix():
    stems = sorted({p.stem for p in MODULES} | set(SCRIPTS))
    pairs = [(a, b) for a in stems for b in stems if a != b and b.startswith(a)]
    assert not pairs, pairs


def test_every_room_says_what_lives_there():
    for init in LIBRARY.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(doc.split()) >= 12, f"{init.relative_to(ROOT)}: say in a few lines what lives here"
        names = {p.stem for p in init.parent.glob("*.py") if p.name != "__init__.py"}
        if init.parent != LIBRARY:
            missing = {n for n in names if n not in doc}
            assert not missing, f"{init.relative_to(ROOT)} does not mention {missing}"
    for path in MODULES + [SRC / f"{s}.py" for s in SCRIPTS]:
        assert ast.get_docstring(ast.parse(path.read_text())), f"{path.relative_to(ROOT)} has no docstring"


def test_the_layout_picture_names_every_script_and_module():
    page = (ROOT / "docs" / "development.md").read_text()
    picture = page[page.index("## Layout"):page.index("**Where new code goes.**")]
    for script in SCRIPTS:
        assert f"src/{script}.py" in picture, f"docs/development.md's layout omits src/{script}.py"
    for path in MODULES:
        folder = path.parent.name
        assert re.search(rf"^\s+{re.escape(path.name)}\s", picture, re.M), f"the layout omits {dotted(path)}"
        if folder != "cxr":
            assert f"  {folder}/" in picture, f"the layout omits the folder {folder}/"
