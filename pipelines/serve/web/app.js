// vidscope's web app: plain JavaScript over /api/v1, no build step. Views by URL hash:
// #/ (search), #/sources, #/source/ID, #/live.
"use strict";

const API = "/api/v1";
const $ = (sel) => document.querySelector(sel);
const WHY = { visual: "seen", clip: "seen", audio: "heard", speech: "said" };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined) node.setAttribute(k, v);
  }
  for (const child of children) if (child !== null && child !== undefined)
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function clock(seconds) {
  const s = Math.max(0, seconds), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  const rest = (s % 60).toFixed(1).padStart(4, "0");
  return (h ? `${h}:${String(m).padStart(2, "0")}` : `${m}`) + `:${rest}`;
}

async function api(path) {
  const response = await fetch(API + path, { credentials: "same-origin" });
  if (response.status === 401) {
    $("#token-bar").hidden = false;
    throw new Error("this server needs its access token");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || `${response.status} ${response.statusText}`);
  return body;
}

$("#token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  // A cookie, so that <video> and <img> requests carry the token too.
  document.cookie = `vidscope_token=${encodeURIComponent($("#token").value)}; path=/; SameSite=Strict`;
  $("#token-bar").hidden = true;
  route();
});

// -- playing a moment ---------------------------------------------------------------------------

// The source file itself when the browser plays it (seek to the moment), else the moment's clip.
// `data-offset` is the source time of the element's time 0, so source time = offset + currentTime.
function play(video, item, { caption } = {}) {
  const whole = Boolean(item.media_url);
  const src = whole ? item.media_url : item.clip_url;
  const at = whole ? item.start : 0;
  video.dataset.offset = whole ? 0 : item.start;
  video.dataset.start = item.start;
  const go = () => { video.currentTime = at; video.play().catch(() => {}); };
  if (video.getAttribute("src") !== src) {
    video.setAttribute("src", src);
    video.addEventListener("loadedmetadata", go, { once: true });
    video.load();
  } else go();
  if (caption) caption.textContent = `${item.source}  ${clock(item.start)}–${clock(item.end)}`;
}

// -- search -------------------------------------------------------------------------------------

function card(item, onclick) {
  const why = Object.entries(item.why || {})
    .filter(([space]) => WHY[space])
    .sort((a, b) => b[1] - a[1])
    .map(([space]) => WHY[space])
    .filter((word, i, all) => all.indexOf(word) === i)
    .slice(0, 2);
  const text = item.description || item.reason || "";
  return el("button", { class: "card", type: "button", onclick, "data-start": item.start, "data-source": item.source_id },
    item.thumbnail_url ? el("img", { src: item.thumbnail_url, alt: "", loading: "lazy" }) : el("div", { class: "noimg" }),
    el("div", { class: "body" },
      el("div", { class: "title" }, item.source),
      el("div", { class: "when" }, `${clock(item.start)}–${clock(item.end)}`),
      el("div", { class: "why" },
        el("span", { class: "chip score" }, item.score.toFixed(2)),
        ...why.map((w) => el("span", { class: `chip ${w}` }, w)),
        ...(item.kinds || []).map((k) => el("span", { class: "chip heard" }, k))),
      el("div", { class: "desc" }, item.transcript ? `${text} “${item.transcript}”` : text)));
}

async function search(q) {
  $("#q").value = q;
  const status = $("#search-status"), results = $("#results");
  status.textContent = "Searching…";
  results.replaceChildren();
  try {
    const body = await api(`/search?q=${encodeURIComponent(q)}&top_k=12`);
    status.textContent = body.results.length ? `${body.results.length} moments for “${q}”` : `Nothing matches “${q}”.`;
    results.replaceChildren(...body.results.map((m) => card(m, () => {
      $("#player-box").hidden = false;
      play($("#player"), m, { caption: $("#player-caption") });
      $("#player-box").scrollIntoView({ behavior: "smooth", block: "nearest" });
    })));
  } catch (error) {
    status.textContent = error.message;
  }
}

$("#search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  location.hash = `#/?q=${encodeURIComponent($("#q").value)}`;
});

async function showHome(params) {
  const q = params.get("q");
  if (q) return search(q);
  const status = $("#search-status");
  try {
    const body = await api("/highlights?top_k=8");
    status.textContent = body.results.length ? "Highlights" : "Nothing indexed yet: run `vidscope ingest` first.";
    $("#results").replaceChildren(...body.results.map((h) => card(h, () => {
      $("#player-box").hidden = false;
      play($("#player"), h, { caption: $("#player-caption") });
    })));
  } catch (error) {
    status.textContent = error.message;
  }
}

// -- sources ------------------------------------------------------------------------------------

async function showSources() {
  const list = $("#source-list");
  list.replaceChildren();
  try {
    const body = await api("/sources");
    list.replaceChildren(...body.sources.map((s) => el("a", { class: "card", href: `#/source/${s.source_id}` },
      el("div", { class: "body" },
        el("div", { class: "title" }, s.name),
        el("div", { class: "when" }, s.duration ? clock(s.duration) : "live"),
        el("div", { class: "desc" }, s.status + (s.error ? `: ${s.error}` : ""))))));
    if (!body.sources.length) list.append(el("p", { class: "status" }, "No sources yet."));
  } catch (error) {
    list.replaceChildren(el("p", { class: "status" }, error.message));
  }
}

function track(name, items, duration, title) {
  const row = el("div", { class: `track ${name}`, "data-track": name }, el("span", { class: "label" }, name));
  for (const item of items) {
    const left = (100 * item.start) / duration, width = (100 * (item.end - item.start)) / duration;
    row.append(el("span", { class: "mark", style: `left:${left}%;width:${Math.max(width, 0.3)}%`,
      title: `${clock(item.start)} ${title(item)}`, "data-start": item.start }));
  }
  return row;
}

async function showSource(id) {
  const video = $("#source-player");
  try {
    const [source, summary] = await Promise.all([api(`/sources/${id}`),
      api(`/sources/${id}/summary`).catch((e) => ({ text: e.message, chapters: [] }))]);
    $("#source-name").textContent = source.name;
    $("#source-meta").textContent = [source.duration ? clock(source.duration) : "live", source.status,
      `${source.segments} segments`, `${source.shots.length} shots`].join(" · ");
    const duration = source.duration || Math.max(1, ...source.shots.map((s) => s.end));
    const timeline = $("#timeline");
    const head = el("div", { class: "playhead" });
    timeline.replaceChildren(
      track("shots", source.shots, duration, (s) => `shot to ${clock(s.end)}`),
      track("speech", source.tracks.speech, duration, (s) => s.text),
      track("sounds", source.tracks.sounds, duration, (s) => s.label),
      track("highlights", source.tracks.highlights, duration, (h) => h.reason), head);
    const seek = (t) => play(video, { ...source, source: source.name, start: t, end: Math.min(duration, t + 30),
      clip_url: `${API}/sources/${id}/clip.mp4?start=${t}&end=${Math.min(duration, t + 30)}` });
    timeline.onclick = (event) => {
      const row = timeline.querySelector(".track").getBoundingClientRect();
      const t = Math.min(Math.max(0, (event.clientX - row.left) / row.width), 1) * duration;
      seek(Number(event.target.dataset.start ?? t.toFixed(2)));
    };
    video.ontimeupdate = () => {
      const t = Number(video.dataset.offset || 0) + video.currentTime;
      const row = timeline.querySelector(".track");
      head.style.left = `${row.offsetLeft + (row.offsetWidth * t) / duration}px`;
    };
    $("#source-summary").textContent = summary.text;
    $("#chapters").replaceChildren(...summary.chapters.map((c) =>
      el("li", { onclick: () => seek(c.start), "data-start": c.start }, `${clock(c.start)}–${clock(c.end)}  ${c.text}`)));
    if (source.media_url) video.setAttribute("src", source.media_url);
  } catch (error) {
    $("#source-name").textContent = error.message;
  }
}

// -- live ---------------------------------------------------------------------------------------

let liveTimer = null, events = null;

async function refreshStreams() {
  try {
    const body = await api("/live");
    $("#streams tbody").replaceChildren(...body.streams.map((s) => el("tr", { "data-stream": s.name },
      el("td", {}, s.name), el("td", {}, s.state ?? "?"),
      el("td", {}, s.lag_seconds != null ? `${s.lag_seconds.toFixed(1)} s` : "–"),
      el("td", {}, s.segments_indexed ?? "–"), el("td", {}, s.segments_dropped ?? 0),
      el("td", {}, s.recording ? `${clock(s.recording.start)}–${clock(s.recording.end)}` : "–"))));
  } catch (error) {
    $("#streams tbody").replaceChildren(el("tr", {}, el("td", { colspan: 6 }, error.message)));
  }
}

function showLive() {
  refreshStreams();
  liveTimer = setInterval(refreshStreams, 2000);
  events = new EventSource(`${API}/events`);
  events.onopen = () => { $("#events-state").textContent = "(connected)"; };
  events.onerror = () => { $("#events-state").textContent = "(reconnecting…)"; };
  const add = (message) => {
    const e = JSON.parse(message.data);
    const title = e.type === "highlight" ? `${e.source} ${clock(e.stream_start)}–${clock(e.stream_end)}: ${e.reason}`
      : `${e.source}: chapter ${clock(e.stream_start ?? 0)}–${clock(e.stream_end ?? 0)} ${e.text ?? ""}`;
    const clip = e.clip ? `${API}/sources/${e.clip.source_id}/clip.mp4?start=${e.clip.start}&end=${e.clip.end}` : null;
    $("#events").prepend(el("li", { class: `event ${e.type}`, "data-type": e.type }, title, " ",
      clip ? el("a", { href: clip, target: "_blank" }, "watch") : null));
  };
  events.addEventListener("highlight", add);
  events.addEventListener("chapter", add);
}

// -- routing ------------------------------------------------------------------------------------

function route() {
  clearInterval(liveTimer);
  if (events) { events.close(); events = null; }
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  const view = parts[0] === "source" ? "source" : parts[0] || "search";
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== `view-${view}`; });
  document.querySelectorAll("[data-nav]").forEach((a) => {
    a.toggleAttribute("aria-current", a.dataset.nav === (view === "source" ? "sources" : view));
    if (a.hasAttribute("aria-current")) a.setAttribute("aria-current", "page");
  });
  if (view === "search") showHome(params);
  else if (view === "sources") showSources();
  else if (view === "source") showSource(parts[1]);
  else if (view === "live") showLive();
}

window.addEventListener("hashchange", route);
route();
