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

  async function predict(event) {
    event.preventDefault();
    clearErrors();
    button.disabled = true;
    output.textContent = "asking…";
    const query = model.task === "classification" ? "?proba=true&labels=true" : "";
    try {
      const response = await fetch(model.predict_url + query, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(rowFromForm()),
      });
      const body = await response.json();
      if (!response.ok) {
        showError(body.error || "the server answered " + response.status);
      } else {
        body.class_names = model.class_names;
        showAnswer(body);
      }
    } catch (err) {
      showError("no answer from the server (" + err.message + ")");
    } finally {
      button.disabled = false;
      refreshStats();
    }
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
