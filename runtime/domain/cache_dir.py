"""Where ttr keeps what it generates for this host (not configuration, not state): ``$TTR_CACHE_DIR``,
else ``~/.cache/ttr``. Each user of it keys its own subdirectory by what makes its files invalid
(the trimmed botocore data in ``runtime.adapters.aws_models``, the compiled email templates in
``runtime.emails.templating``); anything in it may be deleted at any time."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_ENV = "TTR_CACHE_DIR"


def cache_dir() -> Path:
    """The base directory, read from the environment at each call (it is not created here)."""
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "ttr")


def check_private(path: Path) -> None:
    """Raise OSError unless ``path`` is a directory this user owns and no one else can write to:
    what is read from it runs here (compiled templates) or is loaded unchecked (marshal data)."""
    import stat

    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"{path} is not a directory")
    if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PermissionError(f"{path} is writable by other users or not owned by this one")
