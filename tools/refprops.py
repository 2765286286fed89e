#!/usr/bin/env python3
"""Lists the vendor properties (names with a comma) that upstream bindings type as phandles,
split by the shape of their values.

Usage: tools/refprops.py LINUX_SOURCE_DIR
(a Linux source tree with Documentation/devicetree/bindings and arch/*/boot/dts; run with
the python of ci/dtschema-lib.sh's venv, which has ruamel.yaml).
Prints the body of devices/src/guest_node/refs/vendor.rs: two sorted Rust slices.
  VENDOR_PHANDLE_LISTS  properties whose values are lists of bare phandles: the schema types
                        them as one `phandle`, or as a `phandle-array` whose every use (the
                        bindings' examples and the upstream .dts/.dtsi files) is `&label`s
                        only, with at least one use seen;
  VENDOR_REFS           every other vendor phandle property (arguments after a phandle, or
                        no use seen): decoded cell by cell only when one cell long.
"""
import glob
import os
import re
import sys

from ruamel.yaml import YAML


def phandle_type(schema):
    """'phandle', 'phandle-array' or None: how a property's schema types it."""
    if not isinstance(schema, dict) or isinstance(schema.get("properties"), dict):
        return None
    text = str(schema)
    if "definitions/phandle-array" in text:
        return "phandle-array"
    if "definitions/phandle" in text:
        return "phandle"
    return None


def walk(obj, out):
    """Collects {name: type} of the vendor phandle properties of a binding."""
    if isinstance(obj, dict):
        props = obj.get("properties")
        if isinstance(props, dict):
            for k, v in props.items():
                t = phandle_type(v)
                if "," in k and t:
                    # an array anywhere wins over a single phandle elsewhere
                    out[k] = "phandle-array" if "phandle-array" in (t, out.get(k)) else t
        for v in obj.values():
            walk(v, out)
    elif isinstance(obj, list):
        for v in obj:
            walk(v, out)


def uses(texts, names):
    """{name: [value cells as tokens]} of every `name = <...>, <...>;` in the sources."""
    pattern = re.compile(r"(?<![\w,.-])(" + "|".join(re.escape(n) for n in names)
                         + r")\s*=\s*([^;]*);")
    found = {}
    for text in texts:
        for m in pattern.finditer(text):
            cells = " ".join(re.findall(r"<([^>]*)>", m.group(2))).split()
            found.setdefault(m.group(1), []).append(cells)
    return found


def bare_phandles(cells):
    return bool(cells) and all(c.startswith("&") for c in cells)


def sources(linux):
    bindings = os.path.join(linux, "Documentation/devicetree/bindings")
    for f in glob.glob(bindings + "/**/*.yaml", recursive=True):
        yield f
    for ext in ("dts", "dtsi"):
        yield from glob.glob(os.path.join(linux, "arch/*/boot/dts/**/*." + ext), recursive=True)


def main():
    linux = sys.argv[1]
    yaml = YAML(typ="safe")
    types = {}
    for f in glob.glob(linux + "/Documentation/devicetree/bindings/**/*.yaml", recursive=True):
        try:
            with open(f) as fh:
                walk(yaml.load(fh), types)
        except Exception:  # noqa: BLE001 - a binding that does not parse names nothing
            continue
    texts = []
    for f in sources(linux):
        with open(f, errors="replace") as fh:
            texts.append(fh.read())
    seen = uses(texts, sorted(types))
    lists = sorted(n for n, t in types.items() if t == "phandle" or (
        seen.get(n) and all(bare_phandles(c) for c in seen[n])))
    rest = sorted(set(types) - set(lists))
    for title, names in (("VENDOR_PHANDLE_LISTS", lists), ("VENDOR_REFS", rest)):
        print(f"pub const {title}: &[&str] = &[")
        for n in names:
            print(f'    "{n}",')
        print("];\n")


if __name__ == "__main__":
    main()
