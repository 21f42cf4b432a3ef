#!/usr/bin/python3
"""Checks that selu-serve's rooms stay linked one way and its files stay small.

Usage: check_architecture.py [--root REPO_ROOT]

The core (server/core) is a stack of rooms, each its own library:

    base < model < engine < monitor < serving < repository

A room may include and link only itself and the rooms below it. The core
includes no transport (gRPC, HTTP), Prometheus or service-protocol header;
the metrics (server/metrics) include nothing of the transport. No C++ file
under server/ or client/ is longer than MAX_LINES. A room that does not exist
yet (its folder is absent) is simply not checked.

Prints every violation as path:line: reason and exits 1, or prints one OK line
and exits 0. Standard library only.
"""

import argparse
import os
import re
import sys

ROOMS = ["base", "model", "engine", "monitor", "serving", "repository"]
RANK = {room: i for i, room in enumerate(ROOMS)}
MAX_LINES = 500
CXX_EXTENSIONS = (".cc", ".h", ".cpp", ".hpp", ".cxx", ".hh")

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
CORE_ROOM_RE = re.compile(r"^server/core/([^/]+)/")

# Headers the core may not include, with the reason printed.
CORE_FORBIDDEN = [
    (re.compile(r"(^|/)grpc_service\.pb\.h$"), "the service protocol"),
    (re.compile(r"\.grpc\.pb\.h$"), "generated gRPC service code"),
    (re.compile(r"^(grpc|grpcpp|grpc\+\+)/"), "gRPC"),
    (re.compile(r"^prometheus/"), "Prometheus"),
    (re.compile(r"^(civetweb\.h$|CivetServer\.h$|civetweb/)"), "civetweb"),
    (re.compile(r"^httplib\.h$"), "cpp-httplib"),
    (re.compile(r"^server/(grpc|metrics|http)/"), "the transport or the metrics"),
]
# Angle-bracket prefixes the core may not include (<grpc...>, <prometheus...>).
CORE_FORBIDDEN_ANGLE = [("grpc", "gRPC"), ("prometheus", "Prometheus"), ("civetweb", "civetweb")]

METRICS_FORBIDDEN = [
    (re.compile(r"^server/(grpc|http)/"), "the transport"),
    (re.compile(r"^(grpc|grpcpp|grpc\+\+)/"), "gRPC"),
    (re.compile(r"^httplib\.h$"), "cpp-httplib"),
]

# The REST binding (server/http) sits beside the gRPC transport: it submits
# through the inference path the gRPC service owns (server/grpc/infer_job.h,
# protocol_answers.h), but reaches no metrics (they read its counters) and
# no gRPC server object; its HTTP library stays in its .cc files.
HTTP_FORBIDDEN = [
    (re.compile(r"^server/metrics/"), "the metrics"),
    (re.compile(r"^prometheus/"), "Prometheus"),
    (re.compile(r"^server/grpc/(inference_service|stream_infer|monitor_service|finish_now)\.h$"),
     "a gRPC service"),
    (re.compile(r"^grpcpp/"), "gRPC's server API"),
]
HTTP_HEADER_FORBIDDEN = [(re.compile(r"^(httplib\.h|civetweb\.h)$"), "the HTTP library")]

# Link targets no core room may name (besides rooms above it).
CORE_FORBIDDEN_TARGETS = re.compile(
    r"(selu::(core|grpc|metrics|proto|http)\b|gRPC::|prometheus-cpp::|civetweb)")
METRICS_FORBIDDEN_TARGETS = re.compile(r"(selu::(grpc|proto|http)\b|gRPC::)")


def cxx_files(root, top):
    """Repository-relative paths of the C++ files under root/top, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
        dirnames.sort()
        for name in filenames:
            if name.endswith(CXX_EXTENSIONS):
                found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return sorted(p.replace(os.sep, "/") for p in found)


def includes(root, path):
    """(line number, bracket, included path) for each #include of a file.

    A quoted include written relative to the including file ("../x/y.h") is
    returned as its repository-relative path, so it cannot dodge the rules.
    """
    result = []
    with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            match = INCLUDE_RE.match(line)
            if not match:
                continue
            bracket, included = match.group(1), match.group(2).strip()
            if bracket == '"' and not included.startswith(("server/", "proto/", "client/")):
                local = os.path.normpath(os.path.join(os.path.dirname(path), included))
                if os.path.isfile(os.path.join(root, local)):
                    included = local.replace(os.sep, "/")
            result.append((number, bracket, included))
    return result


def room_of(path):
    match = CORE_ROOM_RE.match(path)
    return match.group(1) if match else None


def check_core_file(root, path, problems):
    room = room_of(path)
    for number, bracket, included in includes(root, path):
        where = f"{path}:{number}"
        for pattern, what in CORE_FORBIDDEN:
            if pattern.search(included):
                problems.append(f"{where}: core includes {what}: {included}")
                break
        else:
            if bracket == "<":
                for prefix, what in CORE_FORBIDDEN_ANGLE:
                    if included.startswith(prefix):
                        problems.append(f"{where}: core includes {what}: <{included}>")
                        break
        target = room_of(included)
        if target is None or room is None:
            continue
        if target not in RANK:
            problems.append(f"{where}: includes {included}, of '{target}', which is not a room"
                            f" (rooms: {' < '.join(ROOMS)})")
        elif room in RANK and RANK[target] > RANK[room]:
            problems.append(f"{where}: room '{room}' includes {included} of room '{target}',"
                            f" which is above it ({' < '.join(ROOMS)})")


def check_metrics_file(root, path, problems):
    for number, _, included in includes(root, path):
        for pattern, what in METRICS_FORBIDDEN:
            if pattern.search(included):
                problems.append(f"{path}:{number}: metrics include {what}: {included}")
                break


def check_http_file(root, path, problems):
    rules = HTTP_FORBIDDEN + (HTTP_HEADER_FORBIDDEN if path.endswith(".h") else [])
    for number, _, included in includes(root, path):
        for pattern, what in rules:
            if pattern.search(included):
                problems.append(f"{path}:{number}: the REST binding includes {what}: {included}")
                break


def link_tokens(root, path):
    """(line number, token) for each argument of the target_link_libraries calls
    of a CMakeLists.txt; none if the file is absent."""
    full = os.path.join(root, path)
    if not os.path.isfile(full):
        return
    with open(full, encoding="utf-8") as f:
        text = re.sub(r"#[^\n]*", "", f.read())  # comments out, line numbers kept
    for match in re.finditer(r"\btarget_link_libraries\s*\(", text):
        depth, end = 1, match.end()
        while end < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
        for token in re.finditer(r"\S+", text[match.end():end - 1]):
            yield text.count("\n", 0, match.end() + token.start()) + 1, token.group(0)


def check_room_cmake(root, room, problems):
    path = f"server/core/{room}/CMakeLists.txt"
    for number, token in link_tokens(root, path):
        name = re.match(r"selu::(\w+)", token)
        if name and name.group(1) in RANK and RANK[name.group(1)] > RANK[room]:
            problems.append(f"{path}:{number}: room '{room}' links {token}, a room above it"
                            f" ({' < '.join(ROOMS)})")
        elif CORE_FORBIDDEN_TARGETS.match(token):
            problems.append(f"{path}:{number}: room '{room}' links {token}")


def check_metrics_cmake(root, problems):
    path = "server/metrics/CMakeLists.txt"
    for number, token in link_tokens(root, path):
        if METRICS_FORBIDDEN_TARGETS.match(token):
            problems.append(f"{path}:{number}: metrics link the transport: {token}")


def check_length(root, path, problems):
    with open(os.path.join(root, path), encoding="utf-8", errors="replace") as f:
        count = sum(1 for _ in f)
    if count > MAX_LINES:
        problems.append(f"{path}:{count}: {count} lines, over {MAX_LINES}: look for the seam")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
    parser.add_argument("--root", default=default_root, help="repository root")
    root = parser.parse_args().root
    core_dir = os.path.join(root, "server", "core")
    if not os.path.isdir(core_dir):
        print(f"check_architecture: no server/core under {root}", file=sys.stderr)
        return 2

    problems = []
    present = [room for room in ROOMS if os.path.isdir(os.path.join(core_dir, room))]
    for entry in sorted(os.listdir(core_dir)):
        if os.path.isdir(os.path.join(core_dir, entry)) and entry not in RANK:
            problems.append(f"server/core/{entry}/: not a room; add it to ROOMS in"
                            f" {os.path.relpath(__file__, root)} at its place in the order")

    core = cxx_files(root, "server/core")
    for path in core:
        check_core_file(root, path, problems)
    for room in present:
        check_room_cmake(root, room, problems)
    for path in cxx_files(root, "server/metrics"):
        check_metrics_file(root, path, problems)
    check_metrics_cmake(root, problems)
    for path in cxx_files(root, "server/http"):
        check_http_file(root, path, problems)

    sized = cxx_files(root, "server") + cxx_files(root, "client")
    for path in sized:
        check_length(root, path, problems)

    if problems:
        for problem in problems:
            print(problem)
        print(f"architecture check FAILED: {len(problems)} problem(s)")
        return 1
    print(f"architecture OK: {len(present)} rooms ({' < '.join(present)}), {len(core)} core"
          f" files' includes, {len(sized)} server/client files under {MAX_LINES} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
