"""Where smollab finds its bundled assets and keeps its caches.

Assets ship inside the package so every command works offline; caches (converted models, the
measured CPU matmul ceiling) live under ``$SMOLLAB_CACHE`` (default ``~/.cache/smollab``) so that
expensive one-off work is paid once per machine, not once per process.
"""

import os
import shutil
from pathlib import Path

ASSETS = Path(__file__).parent / "assets"


def cache_dir(*parts: str) -> Path:
    root = Path(os.environ.get("SMOLLAB_CACHE", Path.home() / ".cache" / "smollab"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_run_outputs(run_dir: Path, names: tuple[str, ...]) -> None:
    """Delete the named files and directories of a run directory (what ``--overwrite`` starts over from)."""
    for name in names:
        path = run_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
