#!/usr/bin/env python3
"""The tree's layout rules (docs/conventions.md), checked on the sources:
1. dependencies point downward: a library links only libraries before it in the top-level
   CMakeLists.txt order (so client/ never links coordinator/, the server's engine);
2. one prefix per library: the first word after ff_ of every name a public header declares
   (function, type, extern table) belongs to one library only;
3. the README's architecture table lists every top-level folder and nothing else;
4. one folder, one library, one public header: X/include/ff/ holds X.h and nothing else.
Prints one line per violation and exits 1 if there is any."""
import os
import re
import subprocess
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
bad = []


def read(p):
    with open(os.path.join(root, p), encoding="utf-8") as f:
        return f.read()


top = read("CMakeLists.txt")
order = re.search(r"foreach\(dir ([a-z ]+)\)", top).group(1).split()
rank = {lib: i for i, lib in enumerate(order)}

# 1. dependencies point downward, and the hospital's library never links the server's engine
# (what both need is job/)
FORBIDDEN = {("client", "coordinator")}
for lib in order:
    path = os.path.join(lib, "CMakeLists.txt")
    if not os.path.exists(os.path.join(root, path)):
        continue
    for dep in re.findall(r"\bff_([a-z]+)\b", read(path)):
        if dep in rank and dep != lib and rank[dep] > rank[lib]:
            bad.append(f"{path}: ff_{lib} links ff_{dep}, which comes after it (dependencies "
                       f"point downward: {' '.join(order)})")
        if (lib, dep) in FORBIDDEN:
            bad.append(f"{path}: ff_{lib} links ff_{dep} (what both sides need belongs in job/)")

# 2. one prefix per library
decl = re.compile(
    r"^(?!\s)(?!#)(?!/[*/])(?!typedef\b)[A-Za-z_][\w \t\*]*?\b(ff_[a-z0-9_]+)\s*\("  # functions
    r"|^typedef\b[^;{]*?\b(ff_[a-z0-9_]+)\s*;"                                      # typedef x ff_y;
    r"|^(?:typedef\b[^\n]*)?}\s*(ff_[a-z0-9_]+)\s*;"                                # } ff_y;
    r"|^extern\b[^;]*?\b(ff_[a-z0-9_]+)\s*(?:\[|;)", re.M)                         # extern tables
owner = {}
for lib in order:
    inc = os.path.join(root, lib, "include", "ff")
    if not os.path.isdir(inc):
        continue
    for h in sorted(os.listdir(inc)):
        text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"),
                      read(os.path.join(lib, "include", "ff", h)), flags=re.S)
        for m in decl.finditer(text):
            name = next(g for g in m.groups() if g)
            prefix = name.split("_")[1]
            owner.setdefault(prefix, {}).setdefault(lib, name)
for prefix, libs in sorted(owner.items()):
    if len(libs) > 1:
        bad.append(f"prefix ff_{prefix}_ is exported by {len(libs)} libraries: " +
                   ", ".join(f"{lib}/ ({name})" for lib, name in libs.items()))

# 3. README architecture table = the top-level folders
try:
    files = subprocess.run(["git", "-C", root, "ls-files"], capture_output=True, text=True,
                           check=True).stdout.split()
    folders = {f.split("/")[0] for f in files if "/" in f and not f.startswith(".")}
except (OSError, subprocess.CalledProcessError):
    folders = {d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
               and not d.startswith(".") and not d.startswith("build")}
readme = read("README.md")
table = readme[readme.index("## Architecture"):]
table = table[:table.index("\n## ", 1)]
listed = set()
for row in table.splitlines():
    if row.startswith("| `"):
        listed |= set(re.findall(r"`([A-Za-z0-9_.-]+)/`", row.split("|")[1]))
for f in sorted(folders - listed):
    bad.append(f"README.md: the architecture table does not list {f}/")
for f in sorted(listed - folders):
    bad.append(f"README.md: the architecture table lists {f}/, which does not exist")

# 4. one public header per library, named after its folder
for lib in order:
    inc = os.path.join(root, lib, "include", "ff")
    if not os.path.isdir(inc):
        continue
    for h in sorted(os.listdir(inc)):
        if h != f"{lib}.h":
            bad.append(f"{lib}/include/ff/{h}: a second public header of {lib}/ (its one header "
                       f"is ff/{lib}.h)")

for b in bad:
    print(b)
print(f"layout: {len(order)} libraries, {len(owner)} prefixes, {len(listed)} folders listed; "
      f"{len(bad)} problem(s)")
sys.exit(1 if bad else 0)
