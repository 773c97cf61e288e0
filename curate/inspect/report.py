"""The population and quality report: one self-contained HTML file and summary.json.

The HTML opens offline: plots are PNG images embedded in the page, styles are inline,
nothing is fetched. It holds aggregates only (see :mod:`curate.inspect.population` for the
small-cell rule) and quality counts with index row ids, never a path or a header
value, so it can be shared.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from curate.figures import figure_png
from curate.files import write_atomic
from curate.inspect.deid_runs import OUTCOMES, deid_runs
from curate.inspect.population import SUPPRESSED, band_labels, population
from curate.inspect.quality import QualityReport, check_index
from curate.tracking import StageResult

REPORT_FILE = "report.html"
SUMMARY_FILE = "summary.json"
COLORS = {"M": "#3b6ea5", "F": "#c0504d", "O": "#7f7f7f", "unknown": "#bbbbbb"}


@dataclass
class Report(StageResult):
    summary: dict
    quality: QualityReport
    html_path: Path
    summary_path: Path
    min_cell: int = 5

    def params(self) -> dict[str, object]:
        return {"min_cell": self.min_cell, "deid_stores": len(self.summary.get("deidentification", []))}

    def metrics(self) -> dict[str, float]:
        totals = self.summary["population"]["totals"]
        values = {**{f"population.{k}": v for k, v in totals.items()}, **self.quality.metrics()}
        for number, store in enumerate(self.summary.get("deidentification", []), 1):
            if store["runs"]:
                last = store["runs"][-1]
                values.update({f"deid.store_{number}.{name}": last[name] for name, _ in OUTCOMES})
        return values

    def artifacts(self) -> list[Path]:
        return [self.html_path, self.summary_path]

    def format(self) -> str:
        lines = [self.quality.format(), ""]
        for store in self.summary.get("deidentification", []):
            if not store["runs"]:
                lines.append(f"deid {store['store']}: no de-identification run in its log")
                continue
            r = store["runs"][-1]
            lines.append(
                f"deid {store['store']}, last run: {r['written'] + r['already_done']:,} of {r['files']:,} files written"
                f" ({r['redacted']:,} redacted by it), {r['quarantined']:,} quarantined, {r['withheld']:,} withheld,"
                f" {r['failed']:,} failed"
            )
        return "\n".join(lines) + f"\nreport   {self.html_path}\nsummary  {self.summary_path}"


def build_report(
    index_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    min_cell: int = 5,
    deid: Iterable[str | os.PathLike[str]] = (),
) -> Report:
    """Compute the statistics and checks of the index and write report.html and summary.json.

    `deid` names de-identified stores (`curate deid`'s output folders): the report then
    shows, from their run logs, how many files each run wrote, redacted and quarantined."""
    runs = deid_runs(deid)  # first: a store that is not one fails before any work
    stats = population(index_dir, min_cell=min_cell)
    quality = check_index(index_dir)
    summary = {"population": stats, "quality": quality.to_dict()}
    if runs:
        summary["deidentification"] = runs
    out_dir = Path(out_dir)
    summary_path = write_atomic(out_dir / SUMMARY_FILE, json.dumps(summary, indent=2, default=str))
    html_path = write_atomic(out_dir / REPORT_FILE, render_html(stats, quality, runs))
    return Report(summary=summary, quality=quality, html_path=html_path, summary_path=summary_path, min_cell=min_cell)


# --- numbers -----------------------------------------------------------------------------


def _plottable(value) -> float:
    """A suppressed cell is drawn as nothing (zero), never as its true size."""
    return 0.0 if value == SUPPRESSED or value is None else float(value)


def _shown(value, min_cell: int) -> str:
    if value == SUPPRESSED:
        return f"&lt;{min_cell}"
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


# --- plots -------------------------------------------------------------------------------


def _figure(draw, width: float = 7.0, height: float = 3.2) -> str:
    """Run `draw(ax)` on a new figure; the PNG as a data URI."""

    def styled(fig, ax) -> None:
        draw(ax)
        ax.spines[["top", "right"]].set_visible(False)

    return "data:image/png;base64," + base64.b64encode(figure_png(styled, width, height)).decode("ascii")


def _modality_plot(stats: dict) -> str | None:
    rows = stats["by_modality"]
    if not rows:
        return None

    def draw(ax):
        names = [r["modality"] for r in rows]
        x = range(len(names))
        ax.bar([i - 0.2 for i in x], [_plottable(r["images"]) for r in rows], 0.4, label="images", color="#3b6ea5")
        ax.bar([i + 0.2 for i in x], [_plottable(r["studies"]) for r in rows], 0.4, label="studies", color="#9bbb59")
        ax.set_xticks(list(x), names, rotation=45, ha="right")
        ax.set_yscale("log")
        ax.set_ylabel("count (log scale)")
        ax.legend(frameon=False)

    return _figure(draw)


def _pyramid_plot(stats: dict) -> str | None:
    bands = stats["age_sex"]["bands"]
    labels = [b for b in band_labels() if b != "unknown"]
    if not any(_plottable(v) for b in labels for v in bands[b].values()):
        return None

    def draw(ax):
        y = range(len(labels))
        male = [_plottable(bands[b].get("M")) for b in labels]
        female = [_plottable(bands[b].get("F")) for b in labels]
        ax.barh(list(y), [-m for m in male], color=COLORS["M"], label="M")
        ax.barh(list(y), female, color=COLORS["F"], label="F")
        ax.set_yticks(list(y), labels)
        ax.set_xlabel("patients (M left, F right)")
        limit = max(male + female + [1])
        ax.set_xlim(-limit * 1.1, limit * 1.1)
        ax.set_xticks(ax.get_xticks(), [f"{abs(int(t)):,}" for t in ax.get_xticks()])
        ax.axvline(0, color="black", linewidth=0.6)
        ax.legend(frameon=False, loc="lower right")

    return _figure(draw, height=3.6)


def _trend_plot(stats: dict) -> str | None:
    rows = stats["trend"]
    if not rows:
        return None

    def draw(ax):
        ax.plot(range(len(rows)), [_plottable(r["studies"]) for r in rows], color="#3b6ea5", marker=".")
        step = max(1, len(rows) // 12)
        ax.set_xticks(range(0, len(rows), step), [r["month"] for r in rows][::step], rotation=45, ha="right")
        ax.set_ylabel("studies per month")

    return _figure(draw)


def _studies_per_patient_plot(stats: dict) -> str | None:
    data = stats["studies_per_patient"]
    bands = [b for b in band_labels() if any(_plottable(v) for v in data["bands"][b].values())]
    if not bands:
        return None

    def draw(ax):
        bottom = [0.0] * len(bands)
        palette = ["#c6dbef", "#9ecae1", "#6baed6", "#3182bd", "#08519c"]
        for color, label in zip(palette, data["bins"], strict=True):
            values = [_plottable(data["bands"][b][label]) for b in bands]
            ax.bar(bands, values, bottom=bottom, color=color, label=f"{label} studies")
            bottom = [a + b for a, b in zip(bottom, values, strict=True)]
        ax.set_ylabel("patients")
        ax.set_xlabel("age at first study")
        ax.legend(frameon=False, fontsize=8)

    return _figure(draw, height=3.6)


def _chest_view_plot(stats: dict) -> str | None:
    rows = stats["chest_views"]
    if not rows:
        return None

    def draw(ax):
        labels = [f"{r['modality']} {r['view']}" for r in rows]
        ax.barh(labels[::-1], [_plottable(r["images"]) for r in rows][::-1], color="#4bacc6")
        ax.set_xlabel("chest images")

    return _figure(draw, height=max(2.0, 0.35 * len(rows) + 1))


def _deviation_plot(stats: dict) -> str | None:
    histogram = stats["deviation_index"]["histogram"]
    if not any(_plottable(v) for v in histogram.values()):
        return None

    def draw(ax):
        bins = sorted(int(b) for b in histogram)
        ax.bar(bins, [_plottable(histogram[b]) for b in bins], color="#8064a2")
        for edge in (-3, 3):
            ax.axvline(edge, color="#c0504d", linestyle="--", linewidth=1)
        ax.set_xlabel("DeviationIndex (clipped to ±10)")
        ax.set_ylabel("images")

    return _figure(draw)


def _quality_plot(quality: QualityReport) -> str | None:
    found = [c for c in quality.checks if c.skipped is None and c.count > 0]
    if not found:
        return None

    def draw(ax):
        colors = {"error": "#c0504d", "warning": "#f79646", "info": "#4bacc6"}
        ax.barh(
            [c.name for c in found][::-1],
            [c.count for c in found][::-1],
            color=[colors[c.severity] for c in found][::-1],
        )
        ax.set_xscale("log")
        ax.set_xlabel("count (log scale)")

    return _figure(draw, height=max(2.0, 0.35 * len(found) + 1))


# --- page --------------------------------------------------------------------------------


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5em 0; } td, th { padding: .2em .7em; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f6f6f6; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.totals td { font-size: 1.2em; } figure { margin: 1em 0; } figcaption { color: #666; font-size: .9em; }
.error { color: #c0504d; } .warning { color: #d9822b; } .info { color: #4b8bbe; } .note { color: #666; }
"""

#: Counts the plots that decoded and drew, and says so at the foot of the page.
RENDER_CHECK = """
window.addEventListener('load', function () {
  var images = document.querySelectorAll('figure img');
  var drawn = Array.prototype.filter.call(images, function (i) { return i.complete && i.naturalWidth > 0; });
  var foot = document.getElementById('rendered');
  foot.textContent = drawn.length + ' of ' + images.length + ' plots rendered';
  foot.setAttribute('data-rendered', drawn.length);
  foot.setAttribute('data-plots', images.length);
});
"""


def _table(headers: list[str], rows: list[list], min_cell: int, numeric_from: int = 1) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            css = ' class="n"' if i >= numeric_from else ""
            cells.append(f"<td{css}>{_shown(value, min_cell)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _fig(uri: str | None, caption: str) -> str:
    if uri is None:
        return f'<p class="note">{html.escape(caption)}: no data.</p>'
    caption = html.escape(caption)
    return f'<figure><img src="{uri}" alt="{caption}"><figcaption>{caption}</figcaption></figure>'


def render_html(stats: dict, quality: QualityReport, deid: list[dict] | None = None) -> str:
    k = stats["min_cell"]
    t = stats["totals"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>curate report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>What is in this archive</h1>",
        f"<p class='note'>Aggregates only. Counts from 1 to {k - 1} are shown as &lt;{k} and left out of plots. "
        "Quality examples are row ids (the index's row_id column).</p>",
        "<table class='totals'><tr><th>files</th><th>images</th><th>series</th><th>studies</th>"
        "<th>patients</th></tr><tr>"
        + "".join(f"<td class='n'>{_shown(t[c], k)}</td>" for c in ("files", "images", "series", "studies", "patients"))
        + "</tr></table>",
        "<h2>Modalities</h2>",
        _fig(_modality_plot(stats), "Images and studies by modality"),
        _table(
            ["modality", "images", "studies", "patients"],
            [[r["modality"], r["images"], r["studies"], r["patients"]] for r in stats["by_modality"]],
            k,
        ),
        "<h2>Equipment</h2>",
        _table(
            ["manufacturer", "model", "modalities", "images"],
            [[r["manufacturer"], r["model"], r["modalities"], r["images"]] for r in stats["by_equipment"]],
            k,
            3,
        ),
        "<h2>Patients by age and sex</h2>",
        _fig(_pyramid_plot(stats), "Patients by age at their first study and sex"),
        _table(
            ["age"] + ["M", "F", "O", "unknown"],
            [
                [band] + [v.get(s, 0) for s in ("M", "F", "O", "unknown")]
                for band, v in stats["age_sex"]["bands"].items()
            ],
            k,
        ),
        "<h2>Studies per patient</h2>",
        _fig(_studies_per_patient_plot(stats), "Patients by number of studies, by age group"),
        _table(["age", "mean studies"], [[b, m] for b, m in stats["studies_per_patient"]["mean_studies"].items()], k),
        "<h2>Top utilisers</h2><p class='note'>Patients ranked by studies per modality; ranks, not identities.</p>",
        _table(
            ["modality"] + [f"#{i}" for i in range(1, 11)],
            [
                [r["modality"]] + [p["studies"] for p in r["patients"]] + [None] * (10 - len(r["patients"]))
                for r in stats["top_utilisers"]
            ],
            k,
        ),
        "<h2>Trend</h2>",
        _fig(_trend_plot(stats), "Studies per month"),
        _year_table(stats, k),
        "<h2>Film and digital</h2>",
        *_film_section(stats, k),
        "<h2>Chest imaging: views and body parts</h2>",
        _fig(_chest_view_plot(stats), "Chest images by modality and normalised view"),
        "<p class='note'>How X-ray images spell BodyPartExamined, and what curate reads it as.</p>",
        _table(
            ["written", "normalised", "images"],
            [[r["written"], r["normalised"], r["images"]] for r in stats["body_part_spellings"]],
            k,
            2,
        ),
        "<h2>X-ray dose indicators</h2>",
        _fig(_deviation_plot(stats), "DeviationIndex: dashed lines at ±3"),
        f"<p>DeviationIndex outside ±3: {_shown(stats['deviation_index']['outside_3'], k)} of "
        f"{_shown(stats['deviation_index']['n'], k)} images"
        + (
            f" ({stats['deviation_index']['share_outside_3']:.1%})"
            if "share_outside_3" in stats["deviation_index"]
            else ""
        )
        + "</p>",
        _table(
            ["indicator", "manufacturer", "body part", "n", "p25", "median", "p75"],
            [
                [r["indicator"], r["manufacturer"], r["body_part"], r["n"], r.get("p25"), r.get("median"), r.get("p75")]
                for r in stats["xray_dose"]
            ],
            k,
            3,
        ),
        "<h2>Data quality</h2>",
        _fig(_quality_plot(quality), "Problems found, by check"),
        _quality_table(quality),
        *_deid_section(deid or []),
        "<p class='note' id='rendered'></p>",
        f"<script>{RENDER_CHECK}</script>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _film_plot(stats: dict) -> str | None:
    rows = stats["film_by_year"]
    if not any(_plottable(r["film_images"]) for r in rows):
        return None

    def draw(ax):
        years = [str(r["year"]) for r in rows]
        film = [_plottable(r["film_images"]) for r in rows]
        digital = [_plottable(r["digital_images"]) for r in rows]
        ax.bar(years, film, color="#c0504d", label="digitised film")
        ax.bar(years, digital, bottom=film, color="#3b6ea5", label="digital")
        step = max(1, len(years) // 15)
        ax.set_xticks(range(0, len(years), step), years[::step], rotation=45, ha="right")
        ax.set_ylabel("images")
        ax.legend(frameon=False)

    return _figure(draw)


def _film_section(stats: dict, min_cell: int) -> list[str]:
    """Digitised films (ConversionType DF) against digital images, by study year."""
    rows = stats["film_by_year"]
    if not any(r["film_images"] for r in rows):
        return [
            "<p class='note'>No digitised film in this index (ConversionType DF; `curate digitize` imports films).</p>"
        ]
    return [
        _fig(_film_plot(stats), "Images by study year: digitised film and digital"),
        _table(
            ["year", "film images", "film studies", "digital images", "digital studies"],
            [
                [str(r["year"]), r["film_images"], r["film_studies"], r["digital_images"], r["digital_studies"]]
                for r in rows
            ],
            min_cell,
        ),
    ]


def _year_table(stats: dict, min_cell: int) -> str:
    """Studies per year (rows) and modality (columns)."""
    years = sorted({r["year"] for r in stats["by_year"]})
    modalities = sorted({r["modality"] for r in stats["by_year"]})
    cells = {(r["year"], r["modality"]): r["studies"] for r in stats["by_year"]}
    rows = [[str(y)] + [cells.get((y, m), 0) for m in modalities] for y in years]
    return _table(["year"] + modalities, rows, min_cell)


def _quality_table(quality: QualityReport) -> str:
    rows = []
    for c in quality.checks:
        count = f"skipped: {html.escape(c.skipped)}" if c.skipped else f"{c.count:,} {c.unit}"
        details = "; ".join(f"{html.escape(k)}: {v:,}" for k, v in c.details.items())
        examples = ", ".join(map(str, c.examples))
        rows.append(
            f"<tr><td class='{c.severity}'>{c.severity}</td><td>{c.name}</td><td>{html.escape(c.description)}</td>"
            f"<td class='n'>{count}</td><td>{details}</td><td>{examples}</td></tr>"
        )
    head = "<tr><th>severity</th><th>check</th><th>what</th><th>count</th><th>details</th><th>example row ids</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


# --- de-identification ----------------------------------------------------------------

#: The last run's outcome of every file, as drawn: (count name, label, colour).
_DEID_BARS = (
    ("kept_whole", "written", "#3b6ea5"),
    ("redacted", "written, pixel text redacted", "#6fa8dc"),
    ("quarantined", "quarantined", "#e69138"),
    ("withheld", "withheld by a check", "#c0504d"),
    ("failed", "failed", "#7f7f7f"),
)


def _deid_plot(stores: list[dict]) -> str | None:
    last = [s["runs"][-1] for s in stores if s["runs"]]
    if not last:
        return None
    names = [s["store"] for s in stores if s["runs"]]

    def draw(ax):
        left = [0.0] * len(last)
        for name, label, colour in _DEID_BARS:
            if name == "kept_whole":
                values = [max(0, r["written"] + r["already_done"] - r["redacted"]) for r in last]
            else:
                values = [r[name] for r in last]
            ax.barh(names, values, left=left, color=colour, label=label)
            left = [a + b for a, b in zip(left, values, strict=True)]
        ax.invert_yaxis()
        ax.set_xlabel("files (last run)")
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))

    return _figure(draw, height=1.2 + 0.5 * len(last))


def _deid_section(stores: list[dict]) -> list[str]:
    """Each named store's de-identification runs (counts from its run log; no paths)."""
    if not stores:
        return []
    parts = [
        "<h2>De-identification</h2>",
        "<p class='note'>From the run log of each de-identified store (counts only). Stores are numbered in the "
        "order given. Quarantined files are held back for what their pixels may show; files withheld by a check "
        "still held identifying data after de-identification and were not written.</p>",
        _fig(_deid_plot(stores), "Files by outcome in each store's last run"),
    ]
    for store in stores:
        shown = len(store["runs"])
        more = store["runs_in_log"] - shown
        runs = f"{store['runs_in_log']:,} run" + ("" if store["runs_in_log"] == 1 else "s")
        parts.append(f"<h3>{store['store']}: {runs}" + (f", the last {shown} shown" if more else "") + "</h3>")
        if not shown:
            parts.append("<p class='note'>No de-identification run in its log.</p>")
            continue
        parts.append(
            _table(
                ["run", "time (UTC)"] + [label for _, label in OUTCOMES],
                [
                    [r["seq"], r["time"].replace("T", " ").removesuffix("Z")] + [r[name] for name, _ in OUTCOMES]
                    for r in store["runs"]
                ],
                0,
                2,
            )
        )
        for key, what in (("last_quarantined_by_reason", "quarantined"), ("last_withheld_by_reason", "withheld")):
            if store[key]:
                parts.append(
                    _table([f"{what} in the last run: reason", "files"], [[k, v] for k, v in store[key].items()], 0)
                )
    return parts
