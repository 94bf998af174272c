"""What every fake here does once it serves: writes its ready file whole (a temporary file,
then renamed), so the test waiting for it never reads half of one."""

import json
import os


def announce(path, ready):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(ready, f)
    os.replace(tmp, path)
