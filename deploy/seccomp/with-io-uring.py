#!/usr/bin/env python3
"""Adds io_uring to a Docker (moby) seccomp profile.

Docker's default seccomp profile denies io_uring_setup, io_uring_enter and
io_uring_register since Docker 25 (EPERM), which takes kv-server's io_uring
event loops and O_DIRECT log away. This reads the default profile of *your*
Docker version (profiles/seccomp/default.json in the moby repository, at the
tag of your `docker version`) and writes the same profile with one more rule
that allows exactly those three system calls; nothing else changes.

Usage:
    deploy/seccomp/with-io-uring.py default.json > kv-seccomp.json
    docker run --security-opt seccomp=kv-seccomp.json ... kv-server ...

The profile this writes is Docker's, with the rule added: review it as you
would Docker's own.
"""
import json
import sys

IO_URING = ["io_uring_setup", "io_uring_enter", "io_uring_register"]


def with_io_uring(profile: dict) -> dict:
    rules = profile.setdefault("syscalls", [])
    # Drop any rule naming only io_uring calls (e.g. one that denies them),
    # then allow them explicitly.
    rules[:] = [r for r in rules if not set(r.get("names", [])) <= set(IO_URING)]
    for r in rules:
        if r.get("action") != "SCMP_ACT_ALLOW":
            r["names"] = [n for n in r.get("names", []) if n not in IO_URING]
    rules.append({
        "names": IO_URING,
        "action": "SCMP_ACT_ALLOW",
        "comment": "kv-server: io_uring event loops and log I/O",
    })
    return profile


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        profile = json.load(f)
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        print(f"{sys.argv[1]}: not a seccomp profile (no defaultAction)", file=sys.stderr)
        return 1
    json.dump(with_io_uring(profile), sys.stdout, indent="\t")
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
