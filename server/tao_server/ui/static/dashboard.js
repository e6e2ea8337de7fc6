// The dashboard's only script: it keeps server-rendered pages live by fetching their fragments and
// the JSON API. Identity: the session cookie `tao ui` opened, else a bearer token kept in this
// tab's sessionStorage (never in a URL). Output is added as text nodes, so a task's output can
// never become markup.
"use strict";

(function () {
  const TOKEN_KEY = "tao-token";
  const $ = (id) => document.getElementById(id);
  let signedOut = false;

  function headers(extra) {
    const all = Object.assign({}, extra || {});
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) all.Authorization = "Bearer " + token;
    return all;
  }

  async function call(path, options) {
    const init = Object.assign({}, options || {});
    init.credentials = "same-origin";
    init.headers = headers(init.headers);
    const response = await fetch(path, init);
    if (response.ok) $("signout").hidden = false;
    if (response.status === 401) {
      signedOut = true;
      const body = await response.json().catch(() => ({}));
      showSignin(sessionStorage.getItem(TOKEN_KEY) && body.error ? body.error.message : "");
    }
    return response;
  }

  async function errorText(response) {
    const body = await response.json().catch(() => null);
    return body && body.error ? body.error.message : response.status + " " + response.statusText;
  }

  function showSignin(message) {
    $("signin").hidden = false;
    $("signin-error").textContent = message || "";
  }

  function setupSignin() {
    $("token-save").addEventListener("click", () => {
      const token = $("token").value.trim();
      if (token) {
        sessionStorage.setItem(TOKEN_KEY, token);
        location.reload();
      }
    });
    $("token").addEventListener("keydown", (event) => { if (event.key === "Enter") $("token-save").click(); });
    $("signout").addEventListener("click", async () => {
      sessionStorage.removeItem(TOKEN_KEY);
      await fetch("/ui/logout", { method: "POST", credentials: "same-origin" });
      location.href = "/ui/";
    });
  }

  // Runs `step` again `ms` after each run ends, while `more()` says so and the caller is signed in.
  function poll(step, ms, more) {
    const again = async () => {
      try { await step(); } catch (error) { console.warn(error); }
      if (!signedOut && (!more || more())) setTimeout(again, ms);
    };
    again();
  }

  // -- Jobs -------------------------------------------------------------------------------------

  // The filters live in the page's URL too (?status=&task=&owner=): a reload, a bookmark or a shared link keeps them.
  const FILTERS = ["status", "task", "owner"];

  function filters() {
    const params = new URLSearchParams();
    for (const name of FILTERS) {
      const value = $("filter-" + name).value.trim();
      if (value) params.set(name, value);
    }
    return params;
  }

  function jobsPage() {
    let cursor = "";
    let next = "";
    const given = new URLSearchParams(location.search);
    for (const name of FILTERS) if (given.get(name)) $("filter-" + name).value = given.get(name);
    const load = async () => {
      const params = filters();
      if (cursor) params.set("cursor", cursor);
      const response = await call("/ui/parts/jobs?" + params);
      if (!response.ok) return;
      $("jobs-rows").innerHTML = await response.text();
      next = response.headers.get("X-Next-Cursor") || "";
      $("next-page").disabled = !next;
      $("newest").disabled = !cursor;
    };
    const restart = () => {
      const query = filters().toString();
      history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
      cursor = "";
      load();
    };
    $("next-page").addEventListener("click", () => { cursor = next; load(); });
    $("newest").addEventListener("click", restart);
    $("filter-status").addEventListener("change", restart);
    for (const name of ["task", "owner"]) $("filter-" + name).addEventListener("change", restart);
    poll(load, 500);
  }

  // -- One job ----------------------------------------------------------------------------------

  function jobPage() {
    const id = document.body.dataset.job;
    const path = encodeURIComponent(id);
    let active = true;
    const detail = $("job-detail");
    const loadDetail = async () => {
      const response = await call("/ui/parts/job/" + path);
      if (!response.ok) {
        if (response.status !== 401) detail.textContent = await errorText(response);
        active = false;
        return;
      }
      detail.innerHTML = await response.text();
      active = response.headers.get("X-Job-Active") === "1";
    };
    detail.addEventListener("click", (event) => act(event, id, loadDetail));
    poll(loadDetail, 1000, () => active);
    logViewer(path, () => active);
    trainingCharts(path, () => active);
  }

  // -- Training charts ----------------------------------------------------------------------------

  // A chart per series of the job's status file (loss, learning rate, KPIs), drawn with uPlot (served from
  // /ui/static, never a CDN) and redrawn as the daemon reads new epochs; one last look once the job has ended.
  // The series the daemon samples itself (GPU use) are drawn along time beside them, and fetched at every look.
  function trainingCharts(path, jobActive) {
    const charts = new Map(); // series name -> its uPlot chart
    let lookAfterEnd = 1;
    let drawnAt = null; // the progress's updated_at the charts were last drawn for: nothing new, nothing fetched
    let sampled = false; // the job has sampled series, which grow without its progress moving
    const load = async () => {
      const progress = $("job-progress");
      const updated = progress ? progress.dataset.updated : "";
      if (updated && updated === drawnAt && jobActive() && !sampled) return;
      drawnAt = updated;
      const response = await call("/v1/jobs/" + path + "/metrics");
      if (!response.ok) return;
      const body = await response.json();
      const names = Object.keys(body.series);
      const overTime = new Set(body.sampled || []);
      sampled = overTime.size > 0;
      if (body.unavailable) showTraining("Progress cannot be followed: " + body.unavailable);
      if (!names.length) return;
      showTraining(body.files.length ? "From " + body.files.join(", ") : "");
      // The status file's series first, in their order; the sampled ones after them.
      const ordered = names.filter((name) => !overTime.has(name)).concat(names.filter((name) => overTime.has(name)));
      for (const name of ordered) draw(charts, name, body.series[name], overTime.has(name));
    };
    poll(load, 2000, () => jobActive() || lookAfterEnd-- > 0);
  }

  function showTraining(note) {
    $("training").hidden = false;
    $("training-note").textContent = note;
  }

  function draw(charts, name, points, overTime) {
    const [xs, ys, axis] = xy(points, overTime);
    let chart = charts.get(name);
    if (chart) {
      chart.setData([xs, ys]);
    } else {
      const box = document.createElement("div");
      box.className = "chart";
      box.dataset.series = name;
      $("charts").appendChild(box);
      chart = new uPlot(chartOptions(SAMPLED_TITLES[name] || name, axis, xs.length, SAMPLED_RANGES[name]), [xs, ys], box);
      charts.set(name, chart);
    }
    chart.root.parentNode.dataset.points = String(xs.length);
  }

  // What the daemon's own series measure, for their charts' titles; a percentage is drawn from 0 to 100.
  const SAMPLED_TITLES = { gpu_utilization: "gpu_utilization (%)", gpu_memory_used: "gpu_memory_used (MiB)" };
  const SAMPLED_RANGES = { gpu_utilization: [0, 100] };

  // The points along steps when each has one, else epochs, else in the order written; a sampled series along its
  // times (seconds); uPlot wants x ascending.
  function xy(points, overTime) {
    let axis = points.every((p) => p.step !== null) ? "step" : points.every((p) => p.epoch !== null) ? "epoch" : "point";
    if (overTime) axis = "time";
    const x = (p, index) => (axis === "time" ? Date.parse(p.time) / 1000 : axis === "point" ? index + 1 : p[axis]);
    const pairs = points.map((p, index) => [x(p, index), p.value]);
    pairs.sort((a, b) => a[0] - b[0]);
    return [pairs.map((pair) => pair[0]), pairs.map((pair) => pair[1]), axis];
  }

  function chartOptions(title, axis, count, range) {
    const overTime = axis === "time";
    return {
      title: title,
      width: 440,
      height: 220,
      scales: range ? { x: { time: overTime }, y: { range: range } } : { x: { time: overTime } },
      legend: { show: false }, // the title names the series; the axes give the values
      series: [{ label: axis }, { label: title, stroke: "#76b900", width: 2, points: { show: count < 50 } }],
      // Epochs, steps and points are whole numbers: no tick between two of them. Times: uPlot's own clock ticks.
      axes: [overTime ? { label: "time" } : { label: axis, incrs: WHOLE_STEPS }, { size: 64, values: (u, ticks) => ticks.map(tick) }],
    };
  }

  const WHOLE_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 1e7, 1e8];

  // A value on an axis: three significant digits, small ones as 5e-4 (a learning rate).
  function tick(value) {
    if (value === null || value === undefined) return "--";
    return value !== 0 && Math.abs(value) < 0.01 ? value.toExponential(1) : String(Number(value.toPrecision(3)));
  }

  async function act(event, id, reload) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const action = button.dataset.action;
    if (action === "copy") return copy(button, $(button.dataset.copy));
    button.disabled = true;
    const url = action === "cancel" ? "/v1/jobs/" + encodeURIComponent(id) + "/cancel" : "/ui/jobs/" + encodeURIComponent(id) + "/rerun";
    const response = await call(url, { method: "POST" });
    if (!response.ok) {
      document.querySelector(".action-error").textContent = await errorText(response);
      button.disabled = false;
      return;
    }
    if (action === "rerun") location.href = "/ui/jobs/" + encodeURIComponent((await response.json()).id);
    else reload();
  }

  // The clipboard API needs a secure context (https, or this machine's loopback); elsewhere the text is selected
  // for Ctrl-C.
  async function copy(button, element) {
    const selection = getSelection();
    selection.selectAllChildren(element);
    try {
      await navigator.clipboard.writeText(element.textContent);
      button.textContent = "Copied";
    } catch (error) {
      button.textContent = "Selected: press Ctrl-C";
    }
  }

  const MAX_LINES = 5000; // the DOM keeps at most this many lines; older ones come back with "load earlier"

  function logViewer(path, jobActive) {
    const log = $("log");
    const encoder = new TextEncoder();
    let first = 0; // byte offset of the first line shown
    let end = 0; // byte offset after the last byte shown
    let open = null; // the last line, while its newline has not come
    let following = true;

    const line = (text) => {
      const element = document.createElement("div");
      element.textContent = text;
      return element;
    };
    // Output is gathered and drawn once a frame: one layout per frame, not one per chunk, and lines
    // that would be trimmed at once are counted, never made into nodes.
    let pending = "";
    let drawing = false;
    const append = (text) => {
      pending += text;
      if (!drawing) {
        drawing = true;
        requestAnimationFrame(draw);
      }
    };
    const draw = () => {
      drawing = false;
      const segments = pending.split("\n");
      pending = "";
      const rest = segments.pop(); // after the last newline: a line still open ("" when none)
      if (open && segments.length) {
        open.textContent += segments.shift(); // the open line ends here
        open = null;
      } else if (open) {
        open.textContent += rest;
        return follow_end();
      }
      const fresh = rest === "" ? segments : [...segments, rest];
      const excess = log.childElementCount + fresh.length - MAX_LINES;
      const dropped = Math.max(0, excess - log.childElementCount); // new lines that would go at once
      if (excess > 0 && log.childElementCount > 0) trim(Math.min(excess, log.childElementCount));
      if (dropped > 0) first += encoder.encode(fresh.slice(0, dropped).join("\n") + "\n").length;
      const nodes = document.createDocumentFragment();
      for (const part of fresh.slice(dropped)) nodes.appendChild(line(part));
      log.appendChild(nodes);
      open = rest === "" ? null : log.lastElementChild;
      follow_end();
    };
    // The `count` oldest lines leave the page in one change; `first` moves past their bytes.
    const trim = (count) => {
      const range = document.createRange();
      range.setStartBefore(log.firstElementChild);
      let last = log.firstElementChild;
      for (let i = 0; i < count; i++) {
        first += encoder.encode(last.textContent + "\n").length;
        if (i < count - 1) last = last.nextElementSibling;
      }
      range.setEndAfter(last);
      range.deleteContents();
    };
    const follow_end = () => {
      $("log-earlier").disabled = first === 0;
      if (following) log.scrollTop = log.scrollHeight;
    };
    // Text that starts `start` bytes in: a line cut at the start is dropped, and `start` moved past it.
    const whole = (start, text) => {
      if (start === 0) return [0, text];
      const cut = text.indexOf("\n") + 1;
      return [start + encoder.encode(text.slice(0, cut)).length, text.slice(cut)];
    };

    const tail = async () => {
      const response = await call("/ui/parts/log/" + path);
      if (!response.ok) return false;
      const [start, text] = whole(Number(response.headers.get("X-Log-Start")), await response.text());
      first = start;
      end = Number(response.headers.get("X-Log-End"));
      append(text);
      return true;
    };
    const follow = async () => {
      while (true) {
        const response = await call("/v1/jobs/" + path + "/logs?follow=true&offset=" + end);
        if (!response.ok) return;
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        $("log-state").textContent = "following";
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          end += value.byteLength;
          append(decoder.decode(value, { stream: true }));
        }
        if (!jobActive()) break;
        await new Promise((resolve) => setTimeout(resolve, 500));
        if (!jobActive()) break;
      }
      $("log-state").textContent = "the job has ended";
    };
    const earlier = async () => {
      const response = await call("/ui/parts/log/" + path + "?before=" + first);
      if (!response.ok) return;
      const [start, text] = whole(Number(response.headers.get("X-Log-Start")), await response.text());
      const lines = text.split("\n");
      if (lines[lines.length - 1] === "") lines.pop();
      const top = log.firstElementChild;
      for (const part of lines) log.insertBefore(line(part), top);
      first = start;
      $("log-earlier").disabled = first === 0;
    };

    $("log-earlier").addEventListener("click", earlier);
    $("log-follow").addEventListener("click", () => {
      following = !following;
      $("log-follow").textContent = following ? "Pause follow" : "Resume follow";
      if (following) log.scrollTop = log.scrollHeight;
    });
    $("log-end").addEventListener("click", () => { log.scrollTop = log.scrollHeight; });
    $("log-download").addEventListener("click", async () => {
      const response = await call("/v1/jobs/" + path + "/logs?offset=0");
      if (!response.ok) return;
      const link = document.createElement("a");
      link.href = URL.createObjectURL(await response.blob());
      link.download = decodeURIComponent(path) + ".log";
      document.body.appendChild(link);
      link.click();
      link.remove();
    });
    tail().then((ok) => { if (ok) follow(); });
  }

  // -- GPUs and images --------------------------------------------------------------------------

  function fragmentPage(id, url, ms) {
    const load = async () => {
      const response = await call(url);
      if (response.ok) $(id).innerHTML = await response.text();
    };
    poll(load, ms);
    return load;
  }

  function imagesPage() {
    const reload = fragmentPage("images", "/ui/parts/images", 5000);
    $("images").addEventListener("click", async (event) => {
      const button = event.target.closest("button[data-pull]");
      if (!button) return;
      button.disabled = true;
      const progress = $("pull-progress");
      progress.hidden = false;
      progress.textContent = "";
      const response = await call("/v1/images/pull", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ images: [button.dataset.pull] }),
      });
      if (!response.ok) {
        progress.textContent = await errorText(response);
        button.disabled = false;
        return;
      }
      const layers = new Map(); // one line per layer, updated in place
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffered = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffered += decoder.decode(value, { stream: true });
        const lines = buffered.split("\n");
        buffered = lines.pop();
        for (const text of lines) if (text) layers.set(...pullLine(JSON.parse(text)));
        progress.textContent = Array.from(layers.values()).join("\n");
      }
      reload();
    });
  }

  // A pull's JSON line as [key, text]: a layer's latest status, or the image's end.
  function pullLine(update) {
    if (update.type === "done") return [update.image + " done", update.image + ": " + (update.error ? "failed: " + update.error : "done")];
    const amount = update.total ? " " + Math.round((100 * update.current) / update.total) + "%" : "";
    return [update.image + " " + update.layer, (update.layer ? update.layer + ": " : "") + update.status + amount];
  }

  // -- A sweep: its trials, its optimisation history (uPlot), its parameters in parallel coordinates (SVG) ------

  function sweepPage() {
    const id = document.body.dataset.sweep;
    let active = true;
    let history = null;
    const load = async () => {
      const response = await call("/v1/sweeps/" + encodeURIComponent(id));
      if (!response.ok) {
        if (response.status !== 401) $("sweep-summary").textContent = await errorText(response);
        active = false;
        return;
      }
      const sweep = await response.json();
      active = sweep.state === "running";
      sweepSummary(sweep);
      sweepTrials(sweep);
      history = sweepHistory(sweep, history);
      parallelCoordinates(sweep);
    };
    poll(load, 2000, () => active);
  }

  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (className) td.className = className;
    return td;
  }

  function sweepSummary(sweep) {
    const best = sweep.best;
    const parts = [sweep.state, sweep.kpi + " (" + sweep.direction + ")", sweep.trials.length + "/" + sweep.trials_asked + " trials",
      sweep.parallel + " at a time", Math.round(sweep.gpu_seconds) + " GPU-s"];
    if (best) parts.push("best: trial " + best.number + ", " + tick(best.value));
    if (sweep.message) parts.push(sweep.message);
    $("sweep-summary").textContent = parts.join(" · ");
    $("sweep-best").textContent = best ? best.command : "";
  }

  function sweepTrials(sweep) {
    const names = Array.from(new Set(sweep.trials.flatMap((t) => Object.keys(t.params)))).sort();
    const table = $("sweep-trials");
    table.replaceChildren();
    const head = table.createTHead().insertRow();
    for (const title of ["Trial", "State", sweep.kpi, "Epochs", ...names, "Job"]) {
      const th = document.createElement("th");
      th.textContent = title;
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const trial of sweep.trials) {
      const row = body.insertRow();
      cell(row, trial.number);
      cell(row, trial.state, "status status-" + trial.state).title = trial.error || "";
      cell(row, trial.value === null ? "" : tick(trial.value), "mono");
      cell(row, trial.epochs);
      for (const name of names) cell(row, name in trial.params ? tick(trial.params[name]) : "", "mono");
      const job = cell(row, "");
      if (trial.job) {
        const link = document.createElement("a");
        link.href = "/ui/jobs/" + encodeURIComponent(trial.job);
        link.textContent = trial.job;
        job.appendChild(link);
      }
    }
  }

  // Each complete trial's value by its number, and the best so far.
  function sweepHistory(sweep, chart) {
    const done = sweep.trials.filter((t) => t.state === "complete" && t.value !== null);
    const better = sweep.direction === "maximize" ? Math.max : Math.min;
    const xs = done.map((t) => t.number);
    const ys = done.map((t) => t.value);
    const best = [];
    ys.forEach((y, i) => best.push(i === 0 ? y : better(best[i - 1], y)));
    const data = [xs, ys, best];
    if (chart) {
      chart.setData(data);
      return chart;
    }
    const options = {
      title: "Optimisation history: " + sweep.kpi,
      width: 640,
      height: 260,
      scales: { x: { time: false } },
      series: [
        { label: "trial" },
        { label: sweep.kpi, stroke: "#76b900", width: 0, points: { show: true, size: 7 } },
        { label: "best so far", stroke: "#444", width: 2 },
      ],
      axes: [{ label: "trial", incrs: WHOLE_STEPS }, { size: 64, values: (u, ticks) => ticks.map(tick) }],
    };
    return new uPlot(options, data, $("sweep-history"));
  }

  // An axis per parameter and one for the KPI; a line per trial that has a value (pruned ones dashed, at their last epoch).
  function parallelCoordinates(sweep) {
    const NS = "http://www.w3.org/2000/svg";
    const names = Array.from(new Set(sweep.trials.flatMap((t) => Object.keys(t.params)))).sort();
    const axes = [...names, sweep.kpi];
    const width = 640, height = 260, top = 24, bottom = 24, left = 40, right = 40;
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "Parallel coordinates of the trials' parameters and " + sweep.kpi);
    const valueOf = (t, axis) => {
      if (axis !== sweep.kpi) return t.params[axis];
      if (t.value !== null) return t.value;
      const epochs = Object.keys(t.intermediate || {});
      return epochs.length ? t.intermediate[epochs[epochs.length - 1]] : null;
    };
    const trials = sweep.trials.filter((t) => valueOf(t, sweep.kpi) !== null && valueOf(t, sweep.kpi) !== undefined);
    const x = (i) => left + (axes.length > 1 ? (i * (width - left - right)) / (axes.length - 1) : 0);
    const scales = axes.map((axis) => {
      const values = trials.map((t) => valueOf(t, axis));
      const numeric = values.every((v) => typeof v === "number");
      const choices = numeric ? null : Array.from(new Set(values.map(String))).sort();
      const logScale = numeric && values.length > 1 && Math.min(...values) > 0 && Math.max(...values) / Math.min(...values) > 100;
      const f = (v) => (logScale ? Math.log10(v) : v);
      const lo = numeric ? Math.min(...values.map(f)) : 0, hi = numeric ? Math.max(...values.map(f)) : Math.max(1, choices.length - 1);
      return (v) => {
        const position = numeric ? (hi > lo ? (f(v) - lo) / (hi - lo) : 0.5) : choices.length > 1 ? choices.indexOf(String(v)) / (choices.length - 1) : 0.5;
        return height - bottom - position * (height - top - bottom);
      };
    });
    const add = (name, attributes, text) => {
      const element = document.createElementNS(NS, name);
      for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
      if (text !== undefined) element.textContent = text;
      svg.appendChild(element);
      return element;
    };
    axes.forEach((axis, i) => {
      add("line", { x1: x(i), x2: x(i), y1: top, y2: height - bottom, stroke: "#888" });
      add("text", { x: x(i), y: top - 8, "text-anchor": "middle", "font-size": "12" }, axis);
    });
    const kpis = trials.map((t) => valueOf(t, sweep.kpi));
    const lo = Math.min(...kpis), hi = Math.max(...kpis);
    for (const trial of trials) {
      const points = axes.map((axis, i) => x(i) + "," + scales[i](valueOf(trial, axis)).toFixed(1)).join(" ");
      let share = hi > lo ? (valueOf(trial, sweep.kpi) - lo) / (hi - lo) : 1;
      if (sweep.direction !== "maximize") share = 1 - share;
      const line = add("polyline", {
        points: points,
        fill: "none",
        stroke: "hsl(" + Math.round(20 + 70 * share) + ", 70%, " + Math.round(60 - 25 * share) + "%)",
        "stroke-width": trial.state === "complete" ? "2" : "1",
      });
      if (trial.state !== "complete") line.setAttribute("stroke-dasharray", "4 3");
      const title = document.createElementNS(NS, "title");
      title.textContent = "trial " + trial.number + " (" + trial.state + ")";
      line.appendChild(title);
    }
    $("sweep-parallel").replaceChildren(svg);
  }

  // -- Signing in with `tao ui`'s link ------------------------------------------------------------

  async function loginPage() {
    const code = location.hash.slice(1);
    history.replaceState(null, "", location.pathname); // the code leaves the address bar and history
    const response = await fetch("/ui/session", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: code }),
    });
    if (response.ok) location.replace("/ui/");
    else $("login-message").textContent = await errorText(response);
  }

  setupSignin();
  const pages = {
    jobs: jobsPage,
    job: jobPage,
    sweep: sweepPage,
    gpus: () => fragmentPage("gpus", "/ui/parts/gpus", 1000),
    pipelines: () => fragmentPage("pipelines", "/ui/parts/pipelines", 2000),
    pipeline: () => fragmentPage("pipeline", "/ui/parts/pipeline/" + encodeURIComponent(document.body.dataset.pipeline), 1000),
    images: imagesPage,
    login: loginPage,
  };
  pages[document.body.dataset.page]();
})();
