using System.Text.Json.Nodes;

namespace ClockLM.Clock;

/// <summary>
/// Writes a <see cref="ClockTrace"/> as one self-contained HTML page (no network, no external scripts): the cycle
/// timeline of every pass (a prompt chunk, or one token), the logit-lens grid (cycle × position: top token and its probability, coloured by
/// probability), the attention heatmaps (per layer and head: each position's weights over earlier positions) and, when
/// the trace read sparse autoencoders, each position's most active features.
/// The data is embedded as JSON and drawn by a small script in the page.
/// </summary>
public static class HtmlReport
{
    /// <summary>Writes the report to <paramref name="path"/>; <paramref name="tokenText"/> names each token id.</summary>
    public static void Write(ClockTrace trace, Func<int, string> tokenText, string title, string path) =>
        File.WriteAllText(path, Render(trace, tokenText, title));

    /// <summary>The report as a string.</summary>
    public static string Render(ClockTrace trace, Func<int, string> tokenText, string title)
    {
        var c = trace.Config;
        // Built as JSON nodes rather than serialized from anonymous objects, so the report needs no reflection (native AOT).
        static JsonArray Array<T>(IEnumerable<T> items, Func<T, JsonNode?> node) => new([.. items.Select(node)]);
        var data = new JsonObject
        {
            ["title"] = title,
            ["layers"] = c.Layers,
            ["heads"] = c.Heads,
            ["stages"] = Array(StageNames.All, s => s.Name()),
            ["passes"] = Array(trace.Passes, p => new JsonObject
            {
                ["position"] = p.Position,
                ["rows"] = p.Rows,
                ["text"] = tokenText(p.Tokens[0]),
                ["generated"] = p.Generated,
                ["micros"] = p.Timing.Seconds * 1e6,
                ["embedMicros"] = p.Timing.EmbeddingTicks * 1e6 / System.Diagnostics.Stopwatch.Frequency,
                ["commitMicros"] = p.Timing.CommitTicks * 1e6 / System.Diagnostics.Stopwatch.Frequency,
                ["cycles"] = Array(p.Cycles, cy => Array(cy.StageSeconds, s => s * 1e6)),
            }),
            ["tokens"] = Array(trace.Tokens, t => new JsonObject
            {
                ["position"] = t.Position,
                ["id"] = t.Token,
                ["text"] = tokenText(t.Token),
                ["generated"] = t.Generated,
                ["lens"] = Array(t.Lens, row => row.Length == 0 ? null : new JsonObject { ["text"] = tokenText(row[0].Token), ["p"] = row[0].Probability }),
                ["attention"] = Array(t.Attention, layer => Array(layer, h => Array(h.Weights, w => w))),
                ["features"] = Array(t.Features, f => Array(f.Top, a => new JsonArray(a.Feature, a.Activation))),
            }),
            ["featureHooks"] = Array(trace.FeatureHooks, h => h),
        };
        string json = data.ToJsonString(); // the default encoder escapes '<', '>' and '&', so it is safe inside <script>
        return Template.Replace("__TITLE__", System.Net.WebUtility.HtmlEncode(title)).Replace("__DATA__", json);
    }

    private const string Template = """
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>__TITLE__</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ddd; padding: 2px 6px; font: 12px monospace; text-align: center; }
.legend span { display: inline-block; padding: 2px 8px; margin-right: 6px; color: #fff; font: 12px monospace; }
.heatmaps { display: flex; flex-wrap: wrap; gap: 12px; }
.heatmaps figure { margin: 0; } .heatmaps figcaption { font: 11px monospace; text-align: center; }
canvas { border: 1px solid #ccc; image-rendering: pixelated; }
</style>
</head>
<body>
<h1 id="title">__TITLE__</h1>
<p id="summary"></p>
<h2>Cycle timeline</h2>
<p class="legend" id="legend"></p>
<svg id="timeline" xmlns="http://www.w3.org/2000/svg"></svg>
<h2>Logit lens (top token after each cycle)</h2>
<table id="lens"></table>
<h2 id="features-title" hidden>Sparse-autoencoder features (most active per position: #feature activation)</h2>
<table id="features" hidden></table>
<h2>Attention (per layer and head; row = attending position, column = attended position)</h2>
<div class="heatmaps" id="attention"></div>
<script id="trace-data" type="application/json">__DATA__</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("trace-data").textContent);
const colours = ["#8e44ad", "#2980b9", "#16a085", "#d35400", "#c0392b"];
const total = data.passes.reduce((s, p) => s + p.micros, 0);
document.getElementById("summary").textContent =
  `${data.tokens.length} tokens in ${data.passes.length} passes, ${data.layers} cycles each, ${total.toFixed(1)} µs in all`;
document.getElementById("legend").innerHTML = data.stages
  .map((s, i) => `<span style="background:${colours[i]}">${s}</span>`).join("") +
  `<span style="background:#7f8c8d">embed / commit</span>`;

// Timeline: one row per pass (a prompt chunk or one token), cycles laid end to end, each stage a coloured segment.
const svgNs = "http://www.w3.org/2000/svg";
const svg = document.getElementById("timeline");
const width = 900, rowHeight = 18, labelWidth = 140;
const longest = Math.max(...data.passes.map(p => p.micros), 1e-9);
svg.setAttribute("width", labelWidth + width + 10);
svg.setAttribute("height", data.passes.length * rowHeight + 10);
function rect(x, y, w, fill, tip) {
  const r = document.createElementNS(svgNs, "rect");
  r.setAttribute("x", x); r.setAttribute("y", y); r.setAttribute("width", Math.max(w, 0.5));
  r.setAttribute("height", rowHeight - 4); r.setAttribute("fill", fill);
  const t = document.createElementNS(svgNs, "title"); t.textContent = tip; r.appendChild(t);
  svg.appendChild(r);
}
data.passes.forEach((t, row) => {
  const y = row * rowHeight + 4;
  const label = document.createElementNS(svgNs, "text");
  label.setAttribute("x", 0); label.setAttribute("y", y + 11); label.setAttribute("font-size", 11);
  label.textContent = t.rows === 1 ? `${t.position} ${JSON.stringify(t.text)}` : `${t.position}-${t.position + t.rows - 1} (${t.rows} tokens)`;
  svg.appendChild(label);
  let x = labelWidth;
  const scale = width / longest;
  rect(x, y, t.embedMicros * scale, "#7f8c8d", `embed ${t.embedMicros.toFixed(2)} µs`); x += t.embedMicros * scale;
  t.cycles.forEach((stages, layer) => stages.forEach((us, s) => {
    rect(x, y, us * scale, colours[s], `L${layer} ${data.stages[s]} ${us.toFixed(2)} µs`); x += us * scale;
  }));
  rect(x, y, t.commitMicros * scale, "#7f8c8d", `commit ${t.commitMicros.toFixed(2)} µs`);
});

// Logit lens grid: rows are cycles, columns token positions.
const lens = document.getElementById("lens");
let head = "<tr><th>cycle</th>" + data.tokens.map(t => `<th>${t.position}<br>${escapeHtml(JSON.stringify(t.text))}</th>`).join("") + "</tr>";
let rows = "";
for (let layer = 0; layer < data.layers; layer++) {
  rows += `<tr><th>L${layer}</th>` + data.tokens.map(t => {
    const cell = t.lens[layer];
    if (!cell) return "<td></td>";
    const shade = Math.round(255 - cell.p * 200);
    return `<td style="background:rgb(${shade},${shade},255)" title="p=${cell.p.toFixed(4)}">` +
      `${escapeHtml(JSON.stringify(cell.text))}<br>${cell.p.toFixed(2)}</td>`;
  }).join("") + "</tr>";
}
lens.innerHTML = head + rows;

// Features: rows are positions, columns the autoencoders' hook points.
if (data.featureHooks.length > 0) {
  const table = document.getElementById("features");
  table.hidden = false;
  document.getElementById("features-title").hidden = false;
  table.innerHTML = "<tr><th>position</th>" + data.featureHooks.map(h => `<th>${escapeHtml(h)}</th>`).join("") + "</tr>" +
    data.tokens.map(t => `<tr><th>${t.position} ${escapeHtml(JSON.stringify(t.text))}</th>` + t.features.map(top =>
      `<td>${top.map(([f, a]) => `#${f} ${a.toFixed(2)}`).join("<br>")}</td>`).join("") + "</tr>").join("");
}

// Attention heatmaps: for each layer and head an n×n lower-triangular picture.
const n = data.tokens.length, cell = Math.max(4, Math.min(16, Math.floor(160 / Math.max(n, 1))));
const holder = document.getElementById("attention");
for (let layer = 0; layer < data.layers; layer++) {
  for (let h = 0; h < data.heads; h++) {
    const fig = document.createElement("figure");
    const canvas = document.createElement("canvas");
    canvas.width = n * cell; canvas.height = n * cell;
    canvas.className = "heatmap";
    const g = canvas.getContext("2d");
    data.tokens.forEach((t, i) => t.attention[layer][h].forEach((w, j) => {
      const v = Math.round(255 * (1 - w));
      g.fillStyle = `rgb(255,${v},${v})`;
      g.fillRect(j * cell, i * cell, cell, cell);
    }));
    const caption = document.createElement("figcaption");
    caption.textContent = `L${layer} H${h}`;
    fig.appendChild(canvas); fig.appendChild(caption); holder.appendChild(fig);
  }
}
function escapeHtml(s) { return s.replace(/[&<>"]/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]); }
document.body.dataset.rendered = "true";
</script>
</body>
</html>
""";
}
