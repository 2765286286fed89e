#!/usr/bin/env python3
"""Lists the vendor properties (names with a comma) that upstream bindings type as phandles.

Usage: tools/refprops.py BINDINGS_DIR [DTSCHEMA_SCHEMAS_DIR]
(the bindings of a Linux source tree: Documentation/devicetree/bindings; run with the
python of ci/dtschema-lib.sh's venv, which has ruamel.yaml).
Prints a Rust slice body, sorted, for devices/src/guest_node/refs/vendor.rs: a property
whose schema refers to /schemas/types.yaml#/definitions/phandle or phandle-array.
"""
import glob
import sys

from ruamel.yaml import YAML


def holds_phandle(schema):
    if not isinstance(schema, dict) or isinstance(schema.get("properties"), dict):
        return False
    return "definitions/phandle" in str(schema)


def walk(obj, out):
    if isinstance(obj, dict):
        props = obj.get("properties")
        if isinstance(props, dict):
            out.update(k for k, v in props.items() if "," in k and holds_phandle(v))
        for v in obj.values():
            walk(v, out)
    elif isinstance(obj, list):
        for v in obj:
            walk(v, out)


def main():
    yaml = YAML(typ="safe")
    names = set()
    for root in sys.argv[1:]:
        for f in glob.glob(root + "/**/*.yaml", recursive=True):
            try:
                with open(f) as fh:
                    walk(yaml.load(fh), names)
            except Exception:  # noqa: BLE001 - a binding that does not parse names nothing
                continue
    for n in sorted(names):
        print(f'    "{n}",')


if __name__ == "__main__":
    main()
