"""Checks of a written report, shared by the report tests and the end-to-end searches."""
import re
import struct
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_valid_png(path: Path) -> None:
    """A PNG by its signature and IHDR chunk, with a positive size, that Pillow decodes fully."""
    data = path.read_bytes()
    assert len(data) > 100, path
    assert data[:8] == PNG_SIGNATURE, path
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13, path
    width, height = struct.unpack(">II", data[16:24])
    assert width > 50 and height > 50, (path, width, height)
    from PIL import Image
    with Image.open(path) as im:
        im.load()  # decodes every pixel: a truncated file raises
        assert im.size == (width, height)
        lo, hi = im.convert("L").getextrema()
        assert lo < hi, f"{path} is blank"


def assert_valid_report(exp: Path) -> str:
    """report.html and report.md exist, every figure in report/figures is a valid PNG, and the
    two documents reference exactly the figures that exist. Returns report.md."""
    root = exp / "report"
    html, md = (root / "report.html").read_text(), (root / "report.md").read_text()
    figures = sorted(p.relative_to(root).as_posix() for p in (root / "figures").glob("*.png"))
    assert figures, "no figure"
    for f in figures:
        assert_valid_png(root / f)
    assert sorted(set(re.findall(r"src='([^']+)'", html))) == figures
    assert sorted(set(re.findall(r"\]\((figures/[^)]+)\)", md))) == figures
    return md
