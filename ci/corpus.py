#!/usr/bin/env python3
"""The corpus benchmark (run by ci/corpus.sh, which prepares its inputs).

usage: corpus.py PLATVMM SCHEMA_JSON WORKDIR FLOOR BOARD=DTB...

For every board DTB: every enabled MMIO device node of a passthrough class (NAME_CLASS,
COMPAT_CLASS) is given to `platvmm preview-dt` twice, with no options and "given clock rates
(and the devices it references)":
  - a rate for every clock of the node and of its enabled descendants (clock-rates=NAME:100M
    for each clock-names entry, the clock's index for a clock without a name, after
    "CHILD/" for a descendant's, CHILD its path from the node: how the planner matches rates,
    group members' included);
  - the devices it references passed to the same VM, as more --node arguments (platvmm keeps
    a reference to a device passed with it): each once, in order, every enabled MMIO node
    with `reg` (not the GIC, not the node, its descendants or its ancestors) that provides an
    entry of `dmas`, `phys`, `gpios`/`*-gpios`/`*-gpio` (not `*,nr-gpios`, not a gpio-hog's),
    `pwms`, `mboxes` or `interrupts-extended` of the node or an enabled descendant (decoded
    with the provider's #dma-/#phy-/#gpio-/#pwm-/#mbox-/#interrupt-cells; a 0 phandle is an
    empty entry; a property that does not decode is skipped), or is the interrupt parent of
    one of these with `interrupts` (as the kernel finds it: `interrupt-parent`, else up the
    tree to the first node with #interrupt-cells; an interrupt-map nexus is not followed)
    (REFS, referenced());
  - group=on when the node has `ranges` and an enabled child with `compatible`, `reg` and
    `interrupts` or `interrupts-extended` (group()): its MMIO children are passed too.
preview-dt runs with its default `--scmi auto`: a node with resets or power domains gets
platvmm's SCMI system controller, and its `resets`/`power-domains` point at it.
When preview-dt refuses that, the run falls back to less, in this order: without the
referenced devices, without group=on, with neither (clock rates only); the first accepted
counts, so something passed along never becomes a refusal of the node under test (the count
of fallbacks is printed). The guest node of the node under test (found by the
"PATH: ... → /guest-node" line preview-dt prints for it) is then validated against the
bindings (dtschema's Python API, the schema loaded once: dt-validate costs seconds per call),
and so is the host node, once; the referenced devices' guest nodes are not. A result is one of
  refused       preview-dt exited non-zero (its first line is the reason)
  invalid       the guest node (its subtree) fails its binding, the host node does not
  host-invalid  the guest node fails, and so does the host node it came from
  valid         no error in the guest node's subtree
Prints per-class and per-board tables for both option sets, the top failure reasons, how many
nodes were passed with referenced devices, with group=on and fell back, the figure counting as
valid the nodes whose only errors are the missing resets/reset-names/power-domains (their
providers are another issue's) and, for information, the one counting the nodes whose guest
errors are all errors of their host node too; exits 1 when the valid share given clock rates
is below FLOOR percent.
"""
import collections
import os
import re
import subprocess
import sys

import dtschema
import libfdt

# Node-name prefix (before '@') → class, then compatible tokens (split at , - _ .) → class;
# first match wins. A node matching neither is not a passthrough class (interrupt, clock,
# power, pin, memory and IOMMU controllers, timers, display, GPU...) and is skipped.
NAME_CLASS = [
    ("ethernet", {"ethernet"}),
    ("mmc", {"mmc", "sdhci", "sd", "emmc", "sdio"}),
    ("serial", {"serial", "uart"}),
    ("sata", {"sata", "ahci"}),
    ("usb", {"usb", "usb3", "usb2"}),
    ("crypto", {"crypto", "jr", "rng", "trng", "sec"}),
    ("rtc", {"rtc"}),
    ("spi", {"spi", "qspi", "flexspi", "ospi", "fspi"}),
    ("i2c", {"i2c"}),
    ("can", {"can"}),
    ("watchdog", {"watchdog", "wdt", "wdog"}),
    ("pwm", {"pwm"}),
    ("dma", {"dma", "dma-controller", "dmac"}),
    ("gpio", {"gpio"}),
    ("pcie", {"pcie", "pci"}),
    ("other", {"adc", "i2s", "sai", "spdif", "nand-controller", "nand", "mailbox", "ir"}),
]
COMPAT_CLASS = [
    ("ethernet", {"fec", "eqos", "gem", "macb", "stmmac", "dwmac", "gmac", "emac", "etheravb",
                  "avb", "cpsw", "fman", "netsec", "ave4", "pp22", "genet", "ethernet"}),
    ("mmc", {"sdhci", "esdhc", "usdhc", "mmc", "dwmmc", "mshc", "sdmmc", "emmc"}),
    ("serial", {"uart", "serial", "lpuart", "scif", "hscif", "pl011", "8250", "ns16550a",
                "ns16550", "16550"}),
    ("sata", {"ahci", "sata"}),
    ("usb", {"usb", "xhci", "ehci", "ohci", "dwc3", "dwc2", "musb"}),
    ("crypto", {"crypto", "caam", "rng", "trng"}),
    ("rtc", {"rtc"}),
    ("spi", {"spi", "qspi", "flexspi", "ospi"}),
    ("i2c", {"i2c"}),
    ("can", {"can", "flexcan", "mcan"}),
    ("watchdog", {"wdt", "watchdog", "wdog"}),
    ("pwm", {"pwm"}),
    ("dma", {"dma", "edma", "sdma", "dmac", "bam"}),
    ("gpio", {"gpio"}),
    ("pcie", {"pcie"}),
    ("other", {"adc", "saradc", "i2s", "sai", "spdif", "nand", "mailbox"}),
]
CLASS_ORDER = [c for c, _ in NAME_CLASS]
RESULTS = ["refused", "invalid", "host-invalid", "valid"]
OPTSETS = ["no options", "given clock rates (and the devices it references)"]
# Errors that the SCMI issue's providers will clear: a node with only these counts as valid in
# the second figure.
PROVIDER_ONLY = re.compile(r"^'(resets|reset-names|power-domains|power-domain-names)' is a (required property"
                           r"|dependency of '[a-z-]+')$")


def strings(fdt, off, name):
    p = fdt.getprop(off, name, quiet=(libfdt.NOTFOUND,))
    if p == -libfdt.NOTFOUND:
        return None
    return [s for s in bytes(p).decode("latin-1").split("\0") if s]


def has(fdt, off, name):
    return fdt.getprop(off, name, quiet=(libfdt.NOTFOUND,)) != -libfdt.NOTFOUND


def enabled(fdt, off):
    st = strings(fdt, off, "status")
    return not st or st[0] in ("okay", "ok")


def classify(fdt, off):
    base = fdt.get_name(off).split("@")[0]
    for cls, names in NAME_CLASS:
        if base in names:
            return cls
    tokens = set()
    for c in strings(fdt, off, "compatible") or []:
        tokens.update(t for t in re.split(r"[,\-_.]", c.lower()) if t)
    for cls, toks in COMPAT_CLASS:
        if tokens & toks:
            return cls
    return None


def providers(fdt, off, prop, cells_name, holes=False):
    """The provider offset of each entry of the node's reference `prop`, decoded with the
    providers' `cells_name`; [] without the property, None when it does not decode. With
    `holes`, a 0 phandle is an empty entry (cs-gpios = <&gpio 1 0>, <0>), skipped."""
    p = fdt.getprop(off, prop, quiet=(libfdt.NOTFOUND,))
    if p == -libfdt.NOTFOUND:
        return []
    cells = [int.from_bytes(bytes(p)[i:i + 4], "big") for i in range(0, len(p), 4)]
    out = []
    i = 0
    while i < len(cells):
        if holes and cells[i] == 0:
            i += 1
            continue
        try:
            prov = fdt.node_offset_by_phandle(cells[i])
            k = fdt.getprop(prov, cells_name).as_uint32()
        except libfdt.FdtException:
            return None
        i += 1 + k
        out.append(prov)
    return out


def clock_count(fdt, off):
    """How many entries the node's `clocks` has, decoded with the providers' #clock-cells."""
    provs = providers(fdt, off, "clocks", "#clock-cells")
    return None if provs is None else len(provs)


def clock_ids(fdt, off, scope=""):
    """How clock-rates= names the node's clocks: its `clock-names` entries (an entry's index
    when it has none), after "SCOPE/" for a descendant (its path from the device's node); then
    those of its enabled descendants that have clocks."""
    names = strings(fdt, off, "clock-names") or []
    n = clock_count(fdt, off)
    if n is None:
        n = len(names)
    ids = [scope + (names[i] if i < len(names) else str(i)) for i in range(n)]
    child = fdt.first_subnode(off, quiet=(libfdt.NOTFOUND,))
    while child >= 0:
        if enabled(fdt, child):
            ids += clock_ids(fdt, child, scope + fdt.get_name(child) + "/")
        child = fdt.next_subnode(child, quiet=(libfdt.NOTFOUND,))
    return ids


def enabled_up(fdt, off):
    """The node and all its ancestors are enabled."""
    while off >= 0:
        if not enabled(fdt, off):
            return False
        off = fdt.parent_offset(off, quiet=(libfdt.NOTFOUND,))
    return True


def mmio(fdt, off):
    """Every ancestor of the node translates its children's addresses (`ranges`)."""
    off = fdt.parent_offset(off, quiet=(libfdt.NOTFOUND,))
    while off > 0:
        if not has(fdt, off, "ranges"):
            return False
        off = fdt.parent_offset(off, quiet=(libfdt.NOTFOUND,))
    return True


# The references whose providers the second run passes along: property (or a test on the
# property name) → the providers' cells property.
REFS = [
    (lambda p: p == "dmas", "#dma-cells"),
    (lambda p: p == "phys", "#phy-cells"),
    (lambda p: p == "gpios" or (p.endswith(("-gpios", "-gpio")) and not p.endswith(",nr-gpios")),
     "#gpio-cells"),
    (lambda p: p == "pwms", "#pwm-cells"),
    (lambda p: p == "mboxes", "#mbox-cells"),
    (lambda p: p == "interrupts-extended", "#interrupt-cells"),
]


def phandle_node(fdt, ph):
    try:
        return fdt.node_offset_by_phandle(ph)
    except libfdt.FdtException:
        return None


def interrupt_parent(fdt, off):
    """The interrupt parent of a node with `interrupts`, as the kernel finds it: the node's
    `interrupt-parent`, else its parent's, up to the first node with #interrupt-cells."""
    while True:
        p = fdt.getprop(off, "interrupt-parent", quiet=(libfdt.NOTFOUND,))
        if p != -libfdt.NOTFOUND:
            off = phandle_node(fdt, p.as_uint32())
        else:
            off = fdt.parent_offset(off, quiet=(libfdt.NOTFOUND,))
        if off is None or off < 0:
            return None
        if has(fdt, off, "#interrupt-cells"):
            return off


def gic(fdt, off):
    return has(fdt, off, "interrupt-controller") and any(
        "gic" in c for c in strings(fdt, off, "compatible") or [])


def referenced(fdt, off):
    """Paths of the devices the node and its enabled descendants reference (REFS, and the
    interrupt parent of each node with `interrupts`, the GIC's nodes aside) that are enabled
    MMIO nodes with `reg` outside the node's own subtree and not its ancestors (they would
    contain it), in order, once each."""
    top = fdt.get_path(off).rstrip("/") + "/"
    found = []

    def visit(n):
        props = []
        po = fdt.first_property_offset(n, quiet=(libfdt.NOTFOUND,))
        while po >= 0:
            props.append(fdt.get_property_by_offset(po).name)
            po = fdt.next_property_offset(po, quiet=(libfdt.NOTFOUND,))
        for name in props:
            if name == "gpios" and "gpio-hog" in props:  # the parent's lines, no phandle
                continue
            for test, cells in REFS:
                if test(name):
                    found.extend(providers(fdt, n, name, cells, holes=True) or [])
        if "interrupts" in props and "interrupts-extended" not in props:
            ip = interrupt_parent(fdt, n)
            if ip is not None and not has(fdt, ip, "interrupt-map"):  # a nexus: not followed
                found.append(ip)
        c = fdt.first_subnode(n, quiet=(libfdt.NOTFOUND,))
        while c >= 0:
            if enabled(fdt, c):
                visit(c)
            c = fdt.next_subnode(c, quiet=(libfdt.NOTFOUND,))

    visit(off)
    out = []
    for prov in found:
        path = fdt.get_path(prov)
        if (path in out or (path.rstrip("/") + "/").startswith(top)
                or top.startswith(path.rstrip("/") + "/")):
            continue
        if (has(fdt, prov, "reg") and not gic(fdt, prov) and enabled_up(fdt, prov)
                and mmio(fdt, prov)):
            out.append(path)
    return out


def group(fdt, off):
    """The node has `ranges` and an enabled child with `compatible`, `reg` and interrupts:
    group=on passes that child with it."""
    if not has(fdt, off, "ranges"):
        return False
    c = fdt.first_subnode(off, quiet=(libfdt.NOTFOUND,))
    while c >= 0:
        if (enabled(fdt, c) and has(fdt, c, "compatible") and has(fdt, c, "reg")
                and (has(fdt, c, "interrupts") or has(fdt, c, "interrupts-extended"))):
            return True
        c = fdt.next_subnode(c, quiet=(libfdt.NOTFOUND,))
    return False


def select(dtb):
    """(path, class, clock names for clock-rates, devices it references, group=on) of every
    node the corpus tries."""
    with open(dtb, "rb") as f:
        fdt = libfdt.Fdt(f.read())
    out = []
    # Walk with an explicit stack: (offset, path, ancestors all enabled and translatable).
    def walk(off, path, ok):
        child = fdt.first_subnode(off, quiet=(libfdt.NOTFOUND,))
        while child >= 0:
            cpath = path.rstrip("/") + "/" + fdt.get_name(child)
            cok = ok and enabled(fdt, child)
            if (cok and has(fdt, child, "reg") and has(fdt, child, "compatible")
                    and (has(fdt, child, "interrupts") or has(fdt, child, "interrupts-extended"))):
                cls = classify(fdt, child)
                if cls:
                    out.append((cpath, cls, clock_ids(fdt, child), referenced(fdt, child),
                                group(fdt, child)))
            # MMIO: every ancestor translates its children's addresses (`ranges`), as the
            # kernel's address translation needs; an I2C/SPI/MDIO bus does not.
            walk(child, cpath, cok and has(fdt, child, "ranges"))
            child = fdt.next_subnode(child, quiet=(libfdt.NOTFOUND,))
    walk(0, "/", True)
    return out


class Validator:
    def __init__(self, schema):
        self.v = dtschema.DTValidator([schema])
        self.cache = {}

    def _node_errors(self, node, nodename, disabled, out):
        node["$nodename"] = [nodename]
        try:
            errs = list(self.v.iter_errors(node))
        except RecursionError:
            out.append("recursion error in a referenced schema")
            return
        for e in errs:
            if e.schema_file == "generated-compatibles":
                continue
            # As dt-validate: a disabled node may lack required properties.
            if disabled or (isinstance(e.instance, dict) and "disabled" in
                            str(e.instance.get("status", ""))):
                paths = [set(e.schema_path)] + [set(c.schema_path) for c in e.context or []]
                if any({"required", "unevaluatedProperties"} & p for p in paths):
                    continue
            out.extend(reasons(e))

    def _subtree(self, node, nodename, disabled, out):
        if "status" in node:
            disabled = "disabled" in str(node["status"])
        self._node_errors(node, nodename, disabled, out)
        for name, value in node.items():
            if isinstance(value, dict) and not name.startswith("__"):
                self._subtree(value, name, disabled, out)

    def errors(self, dtb, path):
        """The error reasons of the node at `path` and its subtree."""
        if dtb not in self.cache:
            with open(dtb, "rb") as f:
                self.cache[dtb] = self.v.decode_dtb(f.read())[0]
        node = self.cache[dtb]
        for comp in [c for c in path.split("/") if c]:
            node = node[comp]
        out = []
        self._subtree(node, path.rsplit("/", 1)[-1] or "/", False, out)
        return out

    def forget(self, dtb):
        self.cache.pop(dtb, None)


def reasons(e):
    """One short key per failure reason of a validation error."""
    msg = e.message.replace("\n", " ")
    m = re.search(r"\((.*) (?:was|were) unexpected\)", msg)
    if m:
        return [f"{p} unexpected" for p in re.findall(r"'([^']+)'", m.group(1))]
    if "is a required property" in msg or "is a dependency of" in msg:
        return [msg]
    prop = "/".join(str(p) for p in e.path if not isinstance(p, int)) or "node"
    if e.context:  # oneOf/anyOf: the alternatives (e.g. 'interrupts' or 'interrupts-extended')
        alts = sorted({c.message.replace("\n", " ")[:60] for c in e.context})
        return [f"{prop}: one of: {' | '.join(alts)}"[:110]]
    m = re.search(r" (is too long|is too short|is not of type .*|is not one of .*|"
                  r"does not match .*|is not valid under any of the given schemas.*|"
                  r"should not be valid.*|is valid under each of.*)$", msg)
    return [f"{prop}: {m.group(1) if m else msg}"[:90]]


def pct(n, d):
    return f"{100.0 * n / d:.0f}%" if d else "-"


def table(title, keys, rows):
    """rows: key → {optset: Counter(result)}."""
    print(f"\n{title}")
    print(f"  {'':<28} {'':>5} | {OPTSETS[0]:<28} | {OPTSETS[1]}")
    head = "ref / inv / h-i / valid"
    print(f"  {'':<28} {'tried':>5} | {head:<28} | {head}")
    tot = {o: collections.Counter() for o in OPTSETS}
    for k in keys + ["total"]:
        if k == "total":
            r = tot
        else:
            r = rows[k]
            for o in OPTSETS:
                tot[o].update(r[o])
        tried = sum(r[OPTSETS[0]].values())
        cols = []
        for o in OPTSETS:
            c = r[o]
            cols.append(" / ".join(f"{c[x]:>3}" for x in RESULTS[:-1])
                        + f" / {c['valid']:>3} ({pct(c['valid'], tried):>4})")
        print(f"  {k:<28} {tried:>5} | {cols[0]:<28} | {cols[1]}")


def preview(platvmm, dtb, path, clocks, refs, grp, guest):
    """`platvmm preview-dt` of the node at `path` with a rate for each of `clocks`, group=on
    with `grp` and the nodes `refs` passed with it, into `guest`: (None, the top guest node of
    the node at `path`), or (why, None) when refused."""
    spec = path
    if clocks:
        spec += ",clock-rates=" + ";".join(f"{c}:100M" for c in clocks)
    if grp:
        spec += ",group=on"
    cmd = [platvmm, "preview-dt", "--host-dtb", dtb, "--node", spec]
    for d in refs:
        cmd += ["--node", d]
    p = subprocess.run(cmd + ["-o", guest], capture_output=True, text=True)
    if p.returncode != 0:
        return (p.stderr.strip() or p.stdout.strip() or "?").splitlines()[0], None
    # One "PATH: NAME handler (WHY) → /guest-node" line per node passed.
    m = re.search(r"^" + re.escape(path) + r": .* → (/\S*)$", p.stdout, re.M)
    if not m:
        return f"no guest node for {path} in preview-dt's report", None
    return None, "/" + m.group(1).strip("/").split("/")[0]


def try_node(platvmm, val, dtb, guest_base, path, clocks, refs, grp):
    """The node at `path` under each option set: ({optset: (result, detail, errors)}, the
    host node's errors or None when no guest node failed, what the second run fell back to
    as preview-dt refused the devices referenced or group=on: "" when it did not, else
    "no referenced devices", "no group" or "neither")."""
    res = {}
    host_errs = None
    fell_back = ""
    for k, o in enumerate(OPTSETS):
        if k and not clocks and not refs and not grp:  # the same command as with no options
            res[o] = res[OPTSETS[0]]
            continue
        guest = f"{guest_base}.{k}.dtb"
        if not k:
            tries = [("", [], False)]
        else:  # a refusal with what is passed along falls back to less (clock rates only)
            tries = [("", refs, grp)] + [
                t for t, ok in [(("no referenced devices", [], grp), refs),
                                (("no group", refs, False), grp),
                                (("neither", [], False), refs and grp)] if ok]
        for fell_back_, r, g in tries:
            why, top = preview(platvmm, dtb, path, clocks if k else [], r, g, guest)
            if not why:
                if k:
                    fell_back = fell_back_
                break
        if why:
            res[o] = ("refused", why, [])
            continue
        errs = val.errors(guest, top)
        val.forget(guest)
        if not errs:
            res[o] = ("valid", "", [])
            continue
        if host_errs is None:
            host_errs = val.errors(dtb, path)
        res[o] = ("host-invalid" if host_errs else "invalid", "", errs)
    return res, host_errs, fell_back


def figures(results):
    """The valid figures of each option set, and the informational one."""
    n = len(results)
    print()
    for o in OPTSETS:
        valid = sum(1 for r in results if r[3][o][0] == "valid")
        relaxed = sum(1 for r in results if r[3][o][0] == "valid" or (
            r[3][o][0] in ("invalid", "host-invalid")
            and all(PROVIDER_ONLY.match(e) for e in r[3][o][2])))
        print(f"{o}: {valid} valid of {n} ({pct(valid, n)}); {relaxed} ({pct(relaxed, n)}) "
              f"if only resets/reset-names/power-domains errors remain")
    o = OPTSETS[-1]
    within = sum(1 for r in results if r[3][o][0] == "valid" or (
        r[3][o][0] == "host-invalid" and set(r[3][o][2]) <= set(r[4])))
    print(f"{o}: {within} ({pct(within, n)}) valid or failing only with errors their host "
          f"node has too (for information)")


REQUIRED = re.compile(r"^'([^']+)' is a required property$")


def blocker(kind, detail, errs):
    """Why a node that is not valid (counting the SCMI providers' errors as cleared) stays so,
    in one phrase: a refusal's reason, the host node's own errors, or the references the
    guest node lacks."""
    if kind == "refused":
        return "refused: " + re.sub(r"/[^\s']*", "PATH", detail)[:70]
    if kind == "host-invalid":
        return "the host node fails its binding too"
    rest = [e for e in errs if not PROVIDER_ONLY.match(e)]
    missing = sorted({m.group(1) for m in map(REQUIRED.match, rest) if m})
    if missing and len(missing) == len(rest):
        return "lacks " + ", ".join(missing)
    return "other: " + "; ".join(sorted(rest))[:70]


def blockers(results):
    """The nodes that stay invalid given clock rates (SCMI providers' errors counted as
    cleared), by why: what a generator alone cannot fix is told apart here."""
    o = OPTSETS[-1]
    why = collections.Counter()
    for r in results:
        kind, detail, errs = r[3][o]
        if kind == "valid" or (kind != "refused" and all(PROVIDER_ONLY.match(e) for e in errs)):
            continue
        why[blocker(kind, detail, errs)] += 1
    print(f"\nwhy the other nodes stay invalid, {o} (nodes):")
    for k, c in sorted(why.items(), key=lambda kc: (-kc[1], kc[0])):
        print(f"  {c:>4}  {k}")


def failure_reasons(results):
    """The top failure reasons and the refusals of each option set."""
    for o in OPTSETS:
        reasons_ = collections.Counter()
        refusals = collections.Counter()
        for r in results:
            kind, detail, errs = r[3][o]
            reasons_.update(set(errs))
            if kind == "refused":
                refusals[re.sub(r"/[^\s']*", "PATH", detail)[:110]] += 1
        print(f"\ntop failure reasons, {o} (nodes; invalid and host-invalid guest nodes):")
        for k, c in sorted(reasons_.items(), key=lambda kc: (-kc[1], kc[0]))[:20]:
            print(f"  {c:>4}  {k}")
        if refusals:
            print(f"refusals, {o}:")
            for k, c in sorted(refusals.items(), key=lambda kc: (-kc[1], kc[0])):
                print(f"  {c:>4}  {k}")


def main():
    platvmm, schema, work, floor = sys.argv[1:5]
    boards = [a.split("=", 1) for a in sys.argv[5:]]
    val = Validator(schema)
    # (board, class, path, {optset: (result, detail, errors)}, host errors, what was passed)
    results = []
    for board, dtb in boards:
        nodes = select(dtb)
        for i, (path, cls, clocks, refs, grp) in enumerate(nodes):
            base = os.path.join(work, f"{board}.{i}")
            res, host_errs, fell_back = try_node(platvmm, val, dtb, base, path, clocks, refs,
                                                 grp)
            results.append((board, cls, path, res, host_errs or [], (refs, grp, fell_back)))
        val.forget(dtb)
        print(f"  {board}: {len(nodes)} nodes", flush=True)

    for board, cls, path, res, _, (refs, grp, fell_back) in results:
        line = "  ".join(f"{o}: {res[o][0]}" for o in OPTSETS)
        detail = res[OPTSETS[1]][1] or "; ".join(sorted(set(res[OPTSETS[1]][2])))[:200]
        passed = (f"; {len(refs)} referenced" if refs else "") + ("; group" if grp else "") + (
            f"; fell back to {fell_back}" if fell_back else "")
        print(f"{board} {path} [{cls}{passed}] {line}{'  — ' + detail if detail else ''}")

    per_class = collections.defaultdict(lambda: {o: collections.Counter() for o in OPTSETS})
    per_board = collections.defaultdict(lambda: {o: collections.Counter() for o in OPTSETS})
    for board, cls, _, res, *_ in results:
        for o in OPTSETS:
            per_class[cls][o][res[o][0]] += 1
            per_board[board][o][res[o][0]] += 1
    table("per class (ref = refused, inv = invalid, h-i = host-invalid)",
          [c for c in CLASS_ORDER if c in per_class], per_class)
    table("per board",
          [b for b, _ in boards], per_board)
    figures(results)
    with_refs = [r for r in results if r[5][0]]
    fell = collections.Counter(r[5][2] for r in results if r[5][2])
    print(f"{OPTSETS[1]}: {len(with_refs)} nodes passed with the devices they reference "
          f"({sum(len(r[5][0]) for r in with_refs)} in all), "
          f"{sum(1 for r in results if r[5][1])} with group=on; {sum(fell.values())} fell "
          "back (refused with them): "
          + (", ".join(f"{c} to {f}" for f, c in sorted(fell.items())) or "none"))
    failure_reasons(results)
    blockers(results)

    n = len(results)
    valid = sum(1 for r in results if r[3][OPTSETS[1]][0] == "valid")
    p = 100.0 * valid / n if n else 0.0
    print(f"\ncorpus: {valid} valid of {n} ({p:.1f}%), floor {floor}%")
    return 0 if n and p >= float(floor) else 1


if __name__ == "__main__":
    sys.exit(main())
