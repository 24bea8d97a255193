"""The table of `benches/run.py`: rows with their references and targets, printed as
they come and once more as a table at the end."""

import traceback


class Target:
    """A figure to beat: `op` is "<" (below) or ">=" (at least); on the row's ratio to
    its reference when `on_ratio`, else on its value."""

    def __init__(self, op, threshold, text, on_ratio=False):
        self.op, self.threshold, self.text, self.on_ratio = op, threshold, text, on_ratio

    def check(self, value, ratio):
        subject = ratio if self.on_ratio else value
        if subject is None:
            return None
        return subject < self.threshold if self.op == "<" else subject >= self.threshold


def below(threshold, text):
    return Target("<", threshold, text)


def at_least(threshold, text):
    return Target(">=", threshold, text)


def ratio_at_least(threshold, text):
    return Target(">=", threshold, text, on_ratio=True)


class Results:
    """Rows of the table; each row has a stable key so runs can be compared."""

    def __init__(self, judge=True):
        """With `judge` false (the quick run, whose sizes are not the targets'), targets
        are shown but not judged."""
        self.judge = judge
        self.rows = []
        self.raw = {}
        self.errors = []

    def add(self, key, label, value, unit, ref=None, ref_label=None, ratio=None, target=None,
            note=None):
        """A row; `target` (a Target) is checked against the ratio or the value."""
        met = target.check(value, ratio) if target and self.judge else None
        row = {
            "key": key, "label": label, "value": value, "unit": unit,
            "reference": ref, "reference_label": ref_label, "ratio": ratio,
            "target": target.text if target else None, "met": met, "note": note,
        }
        self.rows.append(row)
        print(f"  {label}: {fmt(value)} {unit}"
              + (f"  ({ratio:.0%} of {ref_label} {fmt(ref)})" if ratio is not None else "")
              + (f"  [{target.text}: {'met' if met else 'MISSED'}]" if met is not None else "")
              + (f"  {note}" if note else ""),
              flush=True)
        return row

    def error(self, section, exc):
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        self.errors.append({"section": section, "error": text})
        print(f"!! {section} failed: {text}", flush=True)
        traceback.print_exc()


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def print_table(results):
    headers = ["measurement", "value", "reference", "ratio", "target", "met"]
    lines = []
    for r in results.rows:
        ref = "-" if r["reference"] is None else f"{fmt(r['reference'])} ({r['reference_label']})"
        lines.append([
            r["label"], f"{fmt(r['value'])} {r['unit']}", ref,
            "-" if r["ratio"] is None else f"{r['ratio']:.0%}",
            r["target"] or "-",
            {True: "yes", False: "NO", None: "-"}[r["met"]],
        ])
    widths = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(headers)]
    sep = "  "
    print()
    print(sep.join(h.ljust(w) for h, w in zip(headers, widths)))
    print(sep.join("-" * w for w in widths))
    for l in lines:
        print(sep.join(c.ljust(w) for c, w in zip(l, widths)))
    if not results.judge:
        print("(quick run: small sizes, so the targets are shown but not judged)")
    for e in results.errors:
        print(f"ERROR in {e['section']}: {e['error']}")
