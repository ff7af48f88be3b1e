// aigw dashboard: polls /dashboard/api/summary and draws it. Plain DOM and SVG, no
// dependencies. Text is always set with textContent, never parsed as HTML.
"use strict";

const POLL_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";
const state = { range: "24h", team: "", timer: null, busy: false };

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, text) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// "12.500000000" -> "$12.50"; "0.000123000" -> "$0.000123": exact, from the decimal string.
function usd(text) {
  if (text === null || text === undefined) return "unknown";
  let [whole, frac = ""] = String(text).split(".");
  frac = frac.replace(/0+$/, "");
  if (frac.length < 2) frac = frac.padEnd(2, "0");
  return "$" + Number(whole).toLocaleString("en-US") + "." + frac;
}
const int = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US"));
const pct = (r) => (r === null || r === undefined ? "–" : (r * 100).toFixed(1) + "%");
const ms = (v) => (v === null || v === undefined ? "–" : int(v) + " ms");
const rate = (v) => (v >= 10 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(2));

function setKpi(name, text) {
  $(`[data-kpi="${name}"]`).textContent = text;
}

function renderCards(data) {
  const row = state.team ? data.teams.find((t) => t.name === state.team) : null;
  const src = state.team ? row : data.total;
  if (!src) {
    for (const k of ["cost", "requests", "rpm", "tokens", "errors", "latency", "cache", "refusals"])
      setKpi(k, "–");
    setKpi("cost", "$0.00");
    setKpi("requests", "0");
    return;
  }
  const live = src.live;
  setKpi("cost", usd(src.cost_usd));
  setKpi("requests", int(src.requests));
  setKpi("rpm", rate(live.requests_per_minute));
  setKpi("tokens", int(src.prompt_tokens + src.completion_tokens));
  setKpi("errors", pct(live.error_rate));
  setKpi("latency", `${ms(live.p50_ms)} / ${ms(live.p95_ms)}`);
  setKpi(
    "cache",
    live.cache_lookups ? `${pct(live.cache_hit_rate)} · ${usd(live.saved_usd)}` : "no cache"
  );
  setKpi("refusals", int(live.limit_refusals));
}

function renderBudgets(data) {
  const box = $("#budgets");
  box.replaceChildren();
  const list = state.team ? data.budgets.filter((b) => b.team === state.team) : data.budgets;
  if (!list.length) {
    box.append(el("div", { class: "empty" }, "No team budgets: aigw teams update TEAM --budget 100"));
    return;
  }
  for (const b of list) {
    const used = b.used_percent ?? 0;
    const card = el("div", { class: "budget", "data-budget": b.name });
    const top = el("div", { class: "top" });
    top.append(el("span", { class: "name" }, b.name));
    top.append(el("span", { class: "used" }, `${used.toFixed(1)}%`));
    card.append(top);
    const track = el("div", { class: "track" });
    const next = b.thresholds.filter((t) => t <= used);
    const fill = el("div", {
      class: "fill" + (used >= 100 || b.refused ? " over" : next.length ? " warn" : ""),
    });
    fill.style.width = Math.min(100, used) + "%";
    track.append(fill);
    for (const t of b.thresholds) {
      const tick = el("div", { class: "tick", title: `alert at ${t}%` });
      tick.style.left = `calc(${Math.min(100, t)}% - 1px)`;
      track.append(tick);
    }
    card.append(track);
    card.append(
      el(
        "div",
        { class: "meta" },
        `${usd(b.spent_usd)} of ${usd(b.budget_usd)} this ${b.period} · ` +
          `alerts at ${b.thresholds.join(", ") || "none"}%` +
          (b.alerts_fired.length ? ` (fired: ${b.alerts_fired.join(", ")}%)` : "") +
          ` · resets ${b.resets_at.slice(0, 10)}`
      )
    );
    box.append(card);
  }
}

function cell(text, cls, col) {
  const td = el("td", cls ? { class: cls } : {}, text);
  if (col) td.dataset.col = col;
  return td;
}

function renderTeams(data) {
  const body = $("#teams tbody");
  body.replaceChildren();
  if (!data.teams.length) {
    const tr = el("tr");
    tr.append(el("td", { colspan: "12", class: "empty" }, "No calls in this range."));
    body.append(tr);
  }
  for (const t of data.teams) {
    const tr = el("tr", { "data-team": t.name });
    const l = t.live;
    tr.append(
      cell(t.name, "", "name"),
      cell(int(t.requests), "num", "requests"),
      cell(rate(l.requests_per_minute), "num", "rpm"),
      cell(int(t.errors), "num", "errors"),
      cell(pct(l.error_rate), "num", "error_rate"),
      cell(int(t.prompt_tokens + t.completion_tokens), "num", "tokens"),
      cell(usd(t.cost_usd), "num", "cost"),
      cell(ms(l.p50_ms), "num", "p50"),
      cell(ms(l.p95_ms), "num", "p95"),
      cell(l.cache_lookups ? pct(l.cache_hit_rate) : "–", "num", "cache"),
      cell(l.cache_hits ? usd(l.saved_usd) : "–", "num", "saved"),
      cell(int(l.limit_refusals), "num", "refusals")
    );
    body.append(tr);
  }
}

function renderTop(id, rows) {
  const body = $(`#${id} tbody`);
  body.replaceChildren();
  if (!rows.length) {
    const tr = el("tr");
    tr.append(el("td", { class: "empty" }, "No calls in this range."));
    body.append(tr);
    return;
  }
  const most = Math.max(...rows.map((r) => r.requests), 1);
  for (const r of rows) {
    const tr = el("tr", { "data-name": r.name });
    const bar = el("td", { class: "bar" });
    const track = el("div", { class: "hbar" });
    const fill = el("span");
    fill.style.width = (100 * r.requests) / most + "%";
    track.append(fill);
    bar.append(track);
    tr.append(
      cell(r.name, "", "name"),
      bar,
      cell(int(r.requests), "num", "requests"),
      cell(usd(r.cost_usd), "num", "cost")
    );
    body.append(tr);
  }
}

function renderHealth(data) {
  const body = $("#health tbody");
  body.replaceChildren();
  const targets = data.health.targets;
  if (!targets.length) {
    const tr = el("tr");
    tr.append(el("td", { colspan: "5", class: "empty" }, "No provider called yet."));
    body.append(tr);
  }
  for (const t of targets) {
    const tr = el("tr", { "data-target": t.target });
    const st = el("td");
    st.append(el("span", { class: `badge ${t.state}` }, t.state.replace("_", "-")));
    tr.append(
      cell(t.target),
      st,
      cell(int(t.window_calls), "num"),
      cell(int(t.window_failures), "num"),
      cell(t.latency_ms === null ? "–" : `${int(Math.round(t.latency_ms))} ms`, "num")
    );
    body.append(tr);
  }
}

// Bars over the range's buckets (missing buckets are zero).
function barChart(svg, series, value, cls, label) {
  const W = 600, H = 180, L = 44, B = 20, T = 8;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();
  const n = Math.max(1, Math.round((series.until - series.since) / series.bucket_seconds));
  const values = new Array(n).fill(0);
  for (const p of series.points) {
    const i = Math.floor((p.t - series.since) / series.bucket_seconds + 1e-6);
    if (i >= 0 && i < n) values[i] = value(p);
  }
  const top = Math.max(...values, 0) || 1;
  const w = (W - L) / n;
  svg.append(el("svg:line", { x1: L, y1: H - B, x2: W, y2: H - B, class: "axis" }));
  svg.append(el("svg:text", { x: L - 4, y: T + 8, "text-anchor": "end" }, label(top)));
  svg.append(el("svg:text", { x: L - 4, y: H - B, "text-anchor": "end" }, "0"));
  values.forEach((v, i) => {
    if (!v) return;
    const h = ((H - B - T) * v) / top;
    const r = el("svg:rect", {
      x: (L + i * w + w * 0.1).toFixed(2),
      y: (H - B - h).toFixed(2),
      width: Math.max(1, w * 0.8).toFixed(2),
      height: h.toFixed(2),
      class: cls,
    });
    r.append(el("svg:title", {}, label(v)));
    svg.append(r);
  });
  const fmt = (ts) => {
    const d = new Date(ts * 1000);
    return series.until - series.since > 86400 * 1.5
      ? d.toISOString().slice(5, 10)
      : d.toISOString().slice(11, 16);
  };
  svg.append(el("svg:text", { x: L, y: H - 5 }, fmt(series.since)));
  svg.append(el("svg:text", { x: W, y: H - 5, "text-anchor": "end" }, fmt(series.until)));
}

function renderCharts(data) {
  const s = data.series;
  const perMin = s.bucket_seconds / 60;
  barChart($("#chart-rpm"), s, (p) => p.requests / perMin, "bar-rpm", (v) => rate(v) + "/min");
  barChart($("#chart-cost"), s, (p) => Number(p.cost_usd), "bar-cost", (v) => "$" + v.toPrecision(3));
}

function renderTeamPicker(data) {
  const select = $("#team");
  const names = data.team_names;
  const have = [...select.options].map((o) => o.value).slice(1);
  if (have.join("\n") === names.join("\n")) return;
  select.replaceChildren(el("option", { value: "" }, "All teams"));
  for (const n of names) select.append(el("option", { value: n }, n));
  select.value = names.includes(state.team) ? state.team : "";
}

function render(data) {
  renderTeamPicker(data);
  renderCards(data);
  renderBudgets(data);
  renderCharts(data);
  renderTeams(data);
  renderTop("models", data.models);
  renderTop("providers", data.providers);
  renderHealth(data);
  const status = $("#status");
  status.className = "status live";
  status.textContent = `live · updated ${data.generated_at.slice(11, 19)} UTC`;
  document.body.dataset.generatedAt = data.generated_at;
}

async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    const q = new URLSearchParams({ range: state.range });
    if (state.team) q.set("team", state.team);
    const res = await fetch("/dashboard/api/summary?" + q, { credentials: "same-origin" });
    if (res.status === 401 || res.status === 403) {
      window.location.assign("/dashboard"); // the session ended: back to the login form
      return;
    }
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    render(await res.json());
  } catch (err) {
    const status = $("#status");
    status.className = "status stale";
    status.textContent = `not updating: ${err.message}`;
  } finally {
    state.busy = false;
  }
}

function pickRange(range) {
  state.range = range;
  for (const b of document.querySelectorAll("#ranges button"))
    b.setAttribute("aria-pressed", String(b.dataset.range === range));
  refresh();
}

function start() {
  for (const b of document.querySelectorAll("#ranges button"))
    b.addEventListener("click", () => pickRange(b.dataset.range));
  $("#team").addEventListener("change", (e) => {
    state.team = e.target.value;
    refresh();
  });
  pickRange(state.range);
  state.timer = setInterval(refresh, POLL_MS);
}

start();
