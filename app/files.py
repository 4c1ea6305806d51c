"""Files the page handles: uploads read once and deleted, downloads kept in Gradio's cache for FILE_SECONDS."""
from __future__ import annotations

import itertools
import os
import threading
import time

from edlm.limits import LIMITS


AUGMENT_MAX_RECORDS = 200  # app: records in one augmentation request (the command line has no such limit)


# Files the augmentation tab writes for download live in Gradio's own cache folder (so Gradio serves them without
# a copy) and are deleted FILE_SECONDS after they were written, and all of them when the server stops; an upload
# is deleted as soon as it has been read.
FILE_SECONDS = int(os.environ.get("EDLM_FILE_SECONDS", LIMITS.app_file_seconds))


_DOWNLOADS: list = []  # folders this process wrote downloads into (removed at exit)


def download_folder() -> str:
    """A fresh private folder inside Gradio's cache for one download (its file keeps the input's name)."""
    import tempfile

    from gradio.utils import get_upload_folder

    root = os.path.join(get_upload_folder(), "edlm-downloads")
    os.makedirs(root, mode=0o700, exist_ok=True)
    sweep_downloads(root)
    folder = tempfile.mkdtemp(dir=root)
    _DOWNLOADS.append(folder)
    return folder


def sweep_downloads(root: str | None = None, age: float | None = None) -> None:
    """Delete download folders older than FILE_SECONDS (all of them with age=0)."""
    import shutil

    if root is None:
        from gradio.utils import get_upload_folder

        root = os.path.join(get_upload_folder(), "edlm-downloads")
    age = FILE_SECONDS if age is None else age
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        try:
            if time.time() - entry.stat().st_mtime >= age:
                shutil.rmtree(entry.path, ignore_errors=True)
        except OSError:
            pass


def start_download_sweeper() -> None:
    """A background thread that deletes expired download folders (and Gradio's `delete_cache` its own copies)."""
    def loop():
        while True:
            time.sleep(max(1, min(60, FILE_SECONDS // 2)))
            sweep_downloads()

    threading.Thread(target=loop, name="edlm-download-sweeper", daemon=True).start()


def remove_own_downloads() -> None:
    """At exit: the download folders this process wrote (other replicas sharing the cache keep theirs)."""
    import shutil

    for folder in _DOWNLOADS:
        shutil.rmtree(folder, ignore_errors=True)


def read_upload(path: str, key: str):
    """The records of an uploaded file (format from its extension, read by the augment reader), then the upload
    is deleted: the user's file is not kept on disk."""
    from gradio.utils import get_upload_folder, is_in_or_equal

    from edlm.augment import EXTENSIONS, format_of, records_of

    fmt = format_of(path)
    try:
        if fmt is None:
            raise ValueError(f"upload a {', '.join(EXTENSIONS)} file")
        return list(itertools.islice(records_of(path, fmt, field_name=key, column=key), AUGMENT_MAX_RECORDS + 1))
    finally:
        if is_in_or_equal(path, get_upload_folder()):
            try:
                os.remove(path)
            except OSError:
                pass
