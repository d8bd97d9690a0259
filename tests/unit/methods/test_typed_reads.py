"""Methods read their hyperparameters typed (``self.hp.q``), never a config dict by string key
(``self.cfg["q"]``): an AST check of trainables/ and tune_lnl/methods/ (except run_config.py,
which turns the flat dict into the typed object, and ray_adapter.py, which reads the method's
name from the dict Ray hands it)."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
ALLOWED = {"tune_lnl/methods/run_config.py", "tune_lnl/methods/ray_adapter.py"}


def string_key_reads(source: str) -> list[str]:
    """``x["key"]`` / ``x.get("key")`` on a name containing ``cfg`` or ``config``."""
    out = []
    for n in ast.walk(ast.parse(source)):
        if isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Constant) and isinstance(n.slice.value, str):
            target = ast.unparse(n.value)
        elif (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "get" and n.args
              and isinstance(n.args[0], ast.Constant) and isinstance(n.args[0].value, str)):
            target = ast.unparse(n.func.value)
        else:
            continue
        if "cfg" in target or "config" in target:
            out.append(ast.unparse(n))
    return out


def test_methods_read_typed_hyperparameters():
    files = [*sorted((REPO / "trainables").glob("*.py")), *sorted((REPO / "tune_lnl" / "methods").glob("*.py"))]
    found = {str(p.relative_to(REPO)): reads for p in files
             if str(p.relative_to(REPO)) not in ALLOWED and (reads := string_key_reads(p.read_text()))}
    assert not found, f"read self.hp.<name> / self.run.data.<name> instead: {found}"


def test_the_check_can_fail():
    assert string_key_reads('q = self.cfg["q"]\nlr = cfg.get("lr", 1)\nm = metrics["proxy"]') == \
        ["self.cfg['q']", "cfg.get('lr', 1)"]
