// The model page: send the form to the model's JSON API, show the answer, poll live figures.
// Plain JS, no library: the page must work with no internet.
"use strict";

(function () {
  const model = JSON.parse(document.getElementById("model-data").textContent);
  const form = document.getElementById("predict-form");
  const button = document.getElementById("predict-button");
  const output = document.getElementById("prediction");
  const chart = document.getElementById("proba-chart");
  const formError = document.getElementById("form-error");
  const explanation = document.getElementById("explanation");
  const explainCaption = document.getElementById("explain-caption");
  const explainChart = document.getElementById("explain-chart");
  const explainReason = document.getElementById("explain-reason");
  const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
  const SVG = "http://www.w3.org/2000/svg";
  // (an <svg> has no .hidden property: only HTML elements do, so the attribute is toggled)

  // A slider and its text box show the same value; the text box is what is sent.
  for (const slider of document.querySelectorAll("input.slider")) {
    const box = document.getElementById(slider.dataset.for);
    slider.addEventListener("input", () => { box.value = slider.value; });
    box.addEventListener("input", () => {
      if (NUMBER.test(box.value.trim())) slider.value = box.value.trim();
    });
  }

  // A text box or, for a text feature with categories or a boolean, a <select>.
  function inputs() {
    return Array.from(form.querySelectorAll("[data-feature]"));
  }

  // Each cell goes as the JSON value its feature takes: text as a string, a boolean as
  // true/false, a number as a number, and an empty field of a feature that may be missing
  // as null. Anything else goes as typed, so the server's own validation names the field,
  // exactly as it would for any client.
  function cellFromInput(box) {
    const text = box.value.trim();
    if (text === "" && box.dataset.nullable === "true") return null;
    if (box.dataset.kind === "text") return box.value;
    if (box.dataset.kind === "boolean" && (text === "true" || text === "false")) {
      return text === "true";
    }
    return NUMBER.test(text) ? Number(text) : text;
  }

  function rowFromForm() {
    const row = {};
    for (const box of inputs()) row[box.dataset.feature] = cellFromInput(box);
    return row;
  }

  function clearErrors() {
    formError.hidden = true;
    formError.textContent = "";
    for (const box of inputs()) {
      box.removeAttribute("aria-invalid");
      const slot = document.getElementById(box.id + "-error");
      slot.hidden = true;
      slot.textContent = "";
    }
  }

  // The API names the field in its message ("feature 'sepal_width': expected a number");
  // show the message beside that field, or above the button if it names none.
  function showError(message) {
    const named = inputs().find((box) => message.includes("'" + box.dataset.feature + "'"));
    if (named) {
      const slot = document.getElementById(named.id + "-error");
      slot.textContent = message;
      slot.hidden = false;
      named.setAttribute("aria-invalid", "true");
      named.focus();
    } else {
      formError.textContent = message;
      formError.hidden = false;
    }
    output.textContent = "error";
    chart.toggleAttribute("hidden", true);
    explanation.hidden = true;
  }

  function drawProbabilities(names, probabilities, predicted) {
    const rowHeight = 28;
    chart.replaceChildren();
    chart.setAttribute("viewBox", "0 0 340 " + rowHeight * names.length);
    names.forEach((name, i) => {
      const p = probabilities[i];
      const y = i * rowHeight;
      const width = Math.round(p * 1600) / 10;
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("x", "0");
      label.setAttribute("y", String(y + 18));
      label.setAttribute("class", name === predicted ? "label predicted" : "label");
      label.textContent = name;
      const bar = document.createElementNS(SVG, "rect");
      bar.setAttribute("x", "120");
      bar.setAttribute("y", String(y + 5));
      bar.setAttribute("width", String(width));
      bar.setAttribute("height", String(rowHeight - 10));
      bar.setAttribute("class", name === predicted ? "bar predicted" : "bar");
      bar.dataset.class = name;
      bar.dataset.probability = String(p);
      const value = document.createElementNS(SVG, "text");
      value.setAttribute("x", String(124 + width));
      value.setAttribute("y", String(y + 18));
      value.setAttribute("class", "value");
      value.textContent = (p * 100).toFixed(1) + "%";
      chart.append(label, bar, value);
    });
    const summary = names.map((n, i) => n + " " + (probabilities[i] * 100).toFixed(1) + "%");
    chart.setAttribute("aria-label", "Class probabilities: " + summary.join(", "));
    chart.toggleAttribute("hidden", false);
  }

  function showAnswer(body) {
    if (model.task === "classification") {
      const predicted = body.labels[0];
      output.textContent = predicted;
      const names = body.class_names;
      drawProbabilities(names, body.probabilities[0], predicted);
    } else {
      output.textContent = String(body.result[0]);
      chart.toggleAttribute("hidden", true);
    }
  }

  // The same request as any client's: JSON in, JSON out, no credentials added by the page.
  function postRow(url, row) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(row),
    });
  }

  async function predict(event) {
    event.preventDefault();
    clearErrors();
    button.disabled = true;
    output.textContent = "asking…";
    const query = model.task === "classification" ? "?proba=true&labels=true" : "";
    const row = rowFromForm();
    try {
      const response = await postRow(model.predict_url + query, row);
      const body = await response.json();
      if (!response.ok) {
        showError(body.error || "the server answered " + response.status);
      } else {
        body.class_names = model.class_names;
        showAnswer(body);
        await explain(row);
      }
    } catch (err) {
      showError("no answer from the server (" + err.message + ")");
    } finally {
      button.disabled = false;
      refreshStats();
    }
  }

  // --- the explanation: why the model answered what it did, for the row just predicted

  // Three significant digits of the largest number shown (0 to 6 decimals), as the card does.
  function decimalsFor(numbers) {
    const largest = Math.max(...numbers.map(Math.abs));
    if (!(largest > 0) || !isFinite(largest)) return 3;
    return Math.min(Math.max(2 - Math.floor(Math.log10(largest)), 0), 6);
  }

  function spaceName(space, className) {
    if (className === undefined) return space === "raw" ? "the predicted value" : space;
    if (space === "probability") return "the probability of " + className;
    if (space === "log_odds") return "the log-odds of " + className;
    return "the raw score of " + className;
  }

  function showReason(message) {
    explainChart.toggleAttribute("hidden", true);
    explainCaption.textContent = "";
    explainReason.textContent = "No explanation: " + message;
    explainReason.hidden = false;
    explanation.hidden = false;
  }

  // Any failure (501: the model cannot be explained, an error, no answer) shows its reason
  // in place of the chart; the prediction above stays as it is.
  async function explain(row) {
    explainReason.hidden = true;
    explainChart.toggleAttribute("hidden", true);
    explainCaption.textContent = "explaining…";
    explanation.hidden = false;
    try {
      const response = await postRow(model.explain_url, row);
      const body = await response.json().catch(() => ({}));
      const first = (body.explanations || [])[0];
      if (!response.ok || first === undefined) {
        showReason(body.error || "the server answered " + response.status);
      } else {
        drawContributions(first, body.space);
      }
    } catch (err) {
      showReason("no answer from the server (" + err.message + ")");
    }
  }

  // At most this many bars; the rest are summed in one, so the chart still adds up.
  const MAX_CONTRIBUTIONS = 10;

  // Largest magnitude first; what is left over is one "other columns" step.
  function contributionSteps(contributions) {
    const steps = Object.entries(contributions)
      .map(([name, value]) => ({ name: name, value: value }))
      .sort((a, b) => Math.abs(b.value) - Math.abs(a.value));
    if (steps.length <= MAX_CONTRIBUTIONS) return steps;
    const rest = steps.slice(MAX_CONTRIBUTIONS - 1);
    const summed = rest.reduce((total, step) => total + step.value, 0);
    return steps.slice(0, MAX_CONTRIBUTIONS - 1)
      .concat([{ name: rest.length + " other columns", value: summed }]);
  }

  function svgElement(tag, attributes, text) {
    const element = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) {
      element.setAttribute(name, String(value));
    }
    if (text !== undefined) element.textContent = text;
    return element;
  }

  // A long column name is cut to fit beside the bars; the full name is the element's title.
  function labelText(y, name, role) {
    const label = svgElement("text", { x: 0, y: y + 17, class: "label " + role },
      name.length > 16 ? name.slice(0, 15) + "…" : name);
    label.append(svgElement("title", {}, name));
    return label;
  }

  // Where each running total sits: the bars span x 120 to 280, between the lowest and the
  // highest total on the way from the base value to the output.
  function waterfallScale(item, steps) {
    let total = item.base_value;
    const ends = [total, item.output];
    for (const step of steps) {
      step.from = total;
      total += step.value;
      ends.push(total);
    }
    const low = Math.min(...ends);
    const span = Math.max(...ends) - low || 1;
    return (v) => Math.round((120 + (160 * (v - low)) / span) * 10) / 10;
  }

  // A waterfall: from the base value (the answer for an average row), each column's step moves
  // the running total right (raises it, +) or left (lowers it, -), ending at the output.
  function drawContributions(item, space) {
    const steps = contributionSteps(item.contributions);
    const decimals = decimalsFor([item.base_value, item.output, ...steps.map((s) => s.value)]);
    const plain = (v) => v.toFixed(decimals);
    const signed = (v) => (v < 0 ? "-" : "+") + Math.abs(v).toFixed(decimals);
    const x = waterfallScale(item, steps);
    const rowHeight = 26;
    const height = rowHeight * (steps.length + 2);
    const value = (y, role, text) => svgElement("text", { x: 340, y: y + 17,
      class: "value " + role, "data-role": role, "text-anchor": "end" }, text);
    const marker = (y, at, role, name) => [labelText(y, name, role),
      svgElement("rect", { x: x(at) - 1, y: y + 3, width: 2, height: rowHeight - 6,
        class: "marker" }),
      value(y, role, plain(at))];
    explainChart.replaceChildren(
      svgElement("line", { x1: x(item.base_value), x2: x(item.base_value), y1: 0, y2: height,
        class: "baseline" }),
      ...marker(0, item.base_value, "base", "base value"));
    steps.forEach((step, i) => {
      const y = (i + 1) * rowHeight;
      const direction = step.value < 0 ? "down" : "up";
      const [start, end] = [x(step.from), x(step.from + step.value)];
      const bar = svgElement("rect", { x: Math.min(start, end), y: y + 5,
        width: Math.max(Math.abs(end - start), 1), height: rowHeight - 10,
        class: "bar " + direction, "data-column": step.name, "data-contribution": step.value });
      const text = value(y, "contribution", signed(step.value));
      text.classList.add(direction);
      explainChart.append(labelText(y, step.name, "column"), bar, text);
    });
    explainChart.append(...marker(height - rowHeight, item.output, "output", "output"));
    explainChart.setAttribute("viewBox", "0 0 340 " + height);
    const what = spaceName(space, item.class_name);
    explainCaption.textContent = "Each column's contribution to " + what + ", largest " +
      "first, from the base value " + plain(item.base_value) + " (the answer for an " +
      "average row) to " + plain(item.output) + ": + raises it, - lowers it.";
    const summary = steps.map((s) => s.name + " " + signed(s.value));
    explainChart.setAttribute("aria-label", "Contributions to " + what + ": base value " +
      plain(item.base_value) + ", " + summary.join(", ") + ", output " + plain(item.output));
    explainChart.toggleAttribute("hidden", false);
  }

  async function refreshStats() {
    try {
      const response = await fetch(model.stats_url, { headers: { Accept: "application/json" } });
      if (!response.ok) return;
      const stats = await response.json();
      const ms = (v) => (v === null ? "–" : v + " ms");
      const latency = stats.latency_ms;
      document.getElementById("stat-requests").textContent = String(stats.requests);
      document.getElementById("stat-errors").textContent = String(stats.errors);
      document.getElementById("stat-latency").textContent =
        [latency.p50, latency.p90, latency.p99].map(ms).join(" / ");
    } catch (err) {
      // the live figures are a nicety: a missed poll changes nothing else on the page
    }
  }

  form.addEventListener("submit", predict);
  refreshStats();
  setInterval(() => { if (!document.hidden) refreshStats(); }, 3000);
})();

// --- input drift (templates/flaskserve/_drift.html): training bins beside the served ones ---
(function () {
  const section = document.getElementById("drift");
  if (!section) return;
  const SVG = "http://www.w3.org/2000/svg";
  const summary = document.getElementById("drift-summary");
  const columns = document.getElementById("drift-columns");

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // One small chart per column: per bin, the training share (outline) and the served share.
  function chart(feature) {
    const width = 12, gap = 4, height = 60;
    const bins = feature.bins;
    const top = Math.max(...bins.map((b) => Math.max(b.baseline, b.since_start || 0)), 0.01);
    const box = svg("svg", { class: "chart drift-chart", role: "img",
      viewBox: "0 0 " + bins.length * (2 * width + gap) + " " + height });
    bins.forEach((b, i) => {
      const x = i * (2 * width + gap);
      const bar = (share, cls, dx) => {
        const h = Math.round((share / top) * (height - 2) * 10) / 10;
        box.append(svg("rect", { x: x + dx, y: height - h, width: width, height: h, class: cls }));
      };
      bar(b.baseline, "drift-baseline", 0);
      if (b.since_start !== null) bar(b.since_start, "drift-served", width);
    });
    const shares = bins.map((b) => b.label + " " + b.baseline + " / " + (b.since_start ?? "–"));
    box.setAttribute("aria-label", feature.name + ", training / served share per bin: " +
      shares.join(", "));
    return box;
  }

  function show(report) {
    if (!report.baseline) { summary.textContent = report.reason; return; }
    summary.textContent = report.rows.since_start + " rows served since start (" +
      report.rows.window + " in the last " + Math.round(report.window_seconds / 60) +
      " min), over " + report.workers + " worker(s): " + report.status + ".";
    columns.replaceChildren(...report.features.map((f) => {
      const psi = (r) => (f[r].psi === null ? "–" : f[r].psi.toFixed(3)) + " " + f[r].status;
      const item = document.createElement("div");
      item.className = "drift-column" + (f.since_start.status === "drift" ||
        f.window.status === "drift" ? " drifting" : "");
      item.dataset.feature = f.name;
      const caption = document.createElement("p");
      caption.textContent = f.name + ": PSI " + psi("since_start") + "; recent " + psi("window");
      item.append(caption, chart(f));
      return item;
    }));
  }

  async function refresh() {
    try {
      const response = await fetch(section.dataset.url, { headers: { Accept: "application/json" } });
      if (response.status === 404) { summary.textContent = "Drift monitoring is off."; return; }
      if (response.ok) show(await response.json());
    } catch (err) {
      // a nicety, like the live figures: a missed poll changes nothing else on the page
    }
  }

  refresh();
  setInterval(() => { if (!document.hidden) refresh(); }, 10000);
})();
// --- end input drift ---

// --- shadow challenger (templates/flaskserve/_shadow.html): how it compares with what answers ---
(function () {
  const section = document.getElementById("shadow");
  if (!section) return;
  const summary = document.getElementById("shadow-summary");
  const table = document.getElementById("shadow-confusion");
  const text = (id, value) => { document.getElementById(id).textContent = value; };
  const ms = (s) => (s === null ? "–" : (s * 1000).toPrecision(3) + " ms");

  function confusion(counts) {
    const labels = [...new Set(Object.values(counts).flatMap(Object.keys)
      .concat(Object.keys(counts)))].sort();
    const cell = (tag, value, scope) => {
      const node = document.createElement(tag);
      node.textContent = value;
      if (scope) node.scope = scope;
      return node;
    };
    const head = document.createElement("tr");
    head.append(cell("td", ""), ...labels.map((l) => cell("th", l, "col")));
    const rows = labels.map((ours) => {
      const row = document.createElement("tr");
      row.append(cell("th", ours, "row"),
        ...labels.map((theirs) => cell("td", String((counts[ours] || {})[theirs] || 0))));
      return row;
    });
    table.replaceChildren(table.caption, head, ...rows);
  }

  function show(r) {
    const facts = document.getElementById("shadow-facts");
    if (r.challenger_version === null) {
      summary.textContent = "No challenger: version " + r.champion_version + " answers alone.";
      facts.hidden = table.hidden = true;
      return;
    }
    summary.textContent = "Version " + r.challenger_version + " scored " + r.rows + " rows of " +
      r.requests + " requests (" + Math.round(r.fraction * 100) + "% sampled) beside version " +
      r.champion_version + ", over " + r.workers + " worker(s).";
    // a regressor's values are compared, within the parity gate's tolerance; no confusion
    const values = r.value_difference;
    const p = values || r.probability_difference;
    const figure = (x) => (values ? x.toPrecision(4) : x.toFixed(3));
    text("shadow-difference-label", (values ? "Value" : "Probability") + " difference (mean / max)");
    text("shadow-agreement", r.agreement === null ? "–" : (r.agreement * 100).toFixed(1) + "%");
    text("shadow-proba", p === null ? "–" : figure(p.mean) + " / " + figure(p.max));
    text("shadow-latency", ms(r.challenger_seconds.per_row) + " / " +
      ms(r.challenger_seconds.per_batch));
    text("shadow-failures", r.failures.rows + " rows / " + r.dropped_requests + " requests");
    if (r.confusion !== null) confusion(r.confusion);
    facts.hidden = false;
    table.hidden = r.confusion === null;
  }

  async function refresh() {
    try {
      const response = await fetch(section.dataset.url, { headers: { Accept: "application/json" } });
      if (response.ok) show(await response.json());
    } catch (err) {
      // a nicety, like the live figures: a missed poll changes nothing else on the page
    }
  }

  refresh();
  setInterval(() => { if (!document.hidden) refresh(); }, 10000);
})();
// --- end shadow challenger ---
