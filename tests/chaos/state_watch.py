"""Watches an aggregator state_dir while a chaos run kills and restarts processes: every file a
reader can see must be whole. Loops until STOP_FILE exists, then prints what it saw and exits 1 if
anything was partial or corrupt.
  *.json parses; metrics.jsonl parses line by line; *.safetensors has a valid header whose tensors
  fill the file exactly; pending *.bin is a whole number of floats; no other non-dot file and no
  file inside a dot directory is looked at (those are writes in progress, invisible by name).
usage: state_watch.py STATE_DIR STOP_FILE"""
import json
import os
import struct
import sys
import time


def check_safetensors(data):
    if len(data) < 8:
        return "shorter than its 8-byte header length"
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        return f"header of {n} bytes runs past the file ({len(data)} bytes)"
    header = json.loads(data[8 : 8 + n])
    end = 0
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        end = max(end, b)
    if 8 + n + end != len(data):
        return f"tensors end at {8 + n + end}, the file has {len(data)} bytes"
    return None


def check(path):
    with open(path, "rb") as f:
        data = f.read()
    name = os.path.basename(path)
    if name.endswith(".jsonl"):
        for line in data.decode().splitlines():
            json.loads(line)
        return None
    if name.endswith(".json"):
        json.loads(data)
        return None
    if name.endswith(".safetensors"):
        return check_safetensors(data)
    if name.endswith(".bin"):
        return None if data and len(data) % 4 == 0 else f"{len(data)} bytes is not a whole number of floats"
    return "a file the state_dir layout does not have"


def main():
    root, stop = sys.argv[1], sys.argv[2]
    scans = files = 0
    bad = []
    while not os.path.exists(stop):
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for fn in filenames:
                if fn.startswith("."):
                    continue
                path = os.path.join(dirpath, fn)
                try:
                    why = check(path)
                except FileNotFoundError:
                    continue  # removed (pending cleared) between listing and reading
                except (ValueError, KeyError, UnicodeDecodeError) as e:
                    why = f"does not parse: {e}"
                files += 1
                if why:
                    bad.append(f"{os.path.relpath(path, root)}: {why}")
        scans += 1
        time.sleep(0.02)
    print(f"state_watch: {scans} scans, {files} file reads, {len(bad)} partial or corrupt")
    for b in bad[:20]:
        print("  " + b)
    sys.exit(1 if bad else 0)


main()
