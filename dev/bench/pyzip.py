#!/usr/bin/env python3
"""Baseline packager: Python's zipfile with ZIP_DEFLATED at level 6, the way SAM CLI, Chalice
and Zappa zip a build directory (os.walk, ZipFile.write per file).

    pyzip.py ROOT OUT.zip
"""
import os
import sys
import zipfile


def main():
    root, out = sys.argv[1], sys.argv[2]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                z.write(full, os.path.relpath(full, root))


if __name__ == "__main__":
    main()
