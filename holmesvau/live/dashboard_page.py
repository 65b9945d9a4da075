"""The dashboard's one page (holmesvau.live.dashboard). Every text goes in through `textContent` or an attribute
(`setAttribute`, URL parts through `encodeURIComponent`), never through innerHTML, so nothing a stream, a model
answer or a file name carries can become markup."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>HolmesVAU live</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px system-ui, sans-serif; margin: 1rem; background: #fafafa; color: #222; }
h1 { font-size: 1.2rem; margin: 0 0 .8rem; }
#cameras { display: grid; grid-template-columns: repeat(auto-fill, minmax(360px, 1fr)); gap: .8rem; }
.camera { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .6rem; }
.camera h2 { font-size: 1rem; margin: 0 0 .3rem; }
.state { font-weight: 600; } .state.online { color: #15803d; } .state.reconnecting, .state.offline { color: #b45309; }
.state.failed { color: #b91c1c; }
canvas { width: 100%; height: 90px; background: #f4f4f5; display: block; margin: .3rem 0; }
.event { border-top: 1px solid #eee; padding: .4rem 0; }
.event .head { font-weight: 600; } .event.open .head { color: #b91c1c; }
.event video { width: 100%; max-height: 200px; }
.frames img { width: 56px; height: 56px; object-fit: cover; margin: 1px; }
.answer { white-space: pre-wrap; }
</style></head>
<body><h1>HolmesVAU live <span id="status"></span></h1><div id="cameras"></div>
<script>
"use strict";
const cams = new Map();   // name -> {root, curve, events, points, eventEls}
const HISTORY = 300;      // seconds of curve shown

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function fileUrl(camera, rel) {
  return "/files/" + encodeURIComponent(camera) + "/" + rel.split("/").map(encodeURIComponent).join("/");
}
function camera(name) {
  if (cams.has(name)) return cams.get(name);
  const root = el("section", "camera"); root.dataset.camera = name;
  const h = el("h2", null, name); root.appendChild(h);
  const line = el("div", "line");
  const state = el("span", "state", "…"); const info = el("span", "info", "");
  line.append(state, " ", info); root.appendChild(line);
  const curve = el("canvas"); curve.width = 600; curve.height = 90; root.appendChild(curve);
  const events = el("div", "events"); root.appendChild(events);
  document.getElementById("cameras").appendChild(root);
  const c = {root, state, info, curve, events, points: [], eventEls: new Map()};
  cams.set(name, c);
  return c;
}
function setState(c, s) {
  c.state.textContent = s.state; c.state.className = "state " + s.state;
  const score = s.last_score == null ? "–" : Number(s.last_score).toFixed(3);
  const lag = s.lag_s == null ? "–" : Number(s.lag_s).toFixed(2) + " s";
  c.info.textContent = "score " + score + " · lag " + lag;
}
function draw(c) {
  const g = c.curve.getContext("2d"), W = c.curve.width, H = c.curve.height;
  g.clearRect(0, 0, W, H);
  if (!c.points.length) return;
  const tmax = c.points[c.points.length - 1][0], tmin = tmax - HISTORY;
  c.points = c.points.filter(p => p[0] >= tmin);
  g.strokeStyle = "#dc2626"; g.beginPath();
  c.points.forEach((p, i) => {
    const x = (p[0] - tmin) / HISTORY * W, y = H - p[1] * (H - 4) - 2;
    i ? g.lineTo(x, y) : g.moveTo(x, y);
  });
  g.stroke();
}
function eventEl(c, id) {
  if (c.eventEls.has(id)) return c.eventEls.get(id);
  const e = el("div", "event"); e.dataset.event = id;
  const head = el("div", "head", id); const body = el("div", "body");
  e.append(head, body); c.events.prepend(e); c.eventEls.set(id, {e, head, body});
  while (c.events.children.length > 20) {            // keep the 20 most recent
    const last = c.events.lastChild; c.eventEls.delete(last.dataset.event); last.remove();
  }
  return c.eventEls.get(id);
}
function onEvent(m) {
  const c = camera(m.camera);
  if (m.type === "gap") {
    const x = eventEl(c, "gap " + m.start_wall);
    x.head.textContent = "gap " + (m.duration_s == null ? "(still down)" : m.duration_s + " s") + " · " + m.reason;
    return;
  }
  if (!m.event) return;
  const x = eventEl(c, m.event);
  if (m.type === "opened") {
    x.e.classList.add("open");
    x.head.textContent = m.event + " · open since " + m.start_s + " s · peak " + m.peak_score;
  } else if (m.type === "closed") {
    x.e.classList.remove("open");
    x.head.textContent = m.event + " · " + m.start_s + "–" + m.end_s + " s · peak " + m.peak_score;
  } else if (m.type === "clip") {
    const v = el("video"); v.controls = true; v.preload = "metadata";
    v.setAttribute("src", fileUrl(m.camera, m.clip)); x.body.prepend(v);
  } else if (m.type === "explained") {
    if (m.error) { x.body.appendChild(el("div", "answer error", "explanation failed: " + m.error)); return; }
    const frames = el("div", "frames");
    (m.frames_s || []).forEach((t, k) => {
      const img = el("img"); img.alt = t + " s";
      const name = String(k).padStart(2, "0") + "_" + Number(t).toFixed(2) + "s.jpg";
      img.setAttribute("src", fileUrl(m.camera, "clips/" + m.event + "_frames/" + name)); frames.appendChild(img);
    });
    x.body.appendChild(frames);
    x.body.appendChild(el("div", "answer judgement", m.judgement));
    x.body.appendChild(el("div", "answer description", m.description));
  }
}
async function load() {
  const list = await (await fetch("/api/cameras")).json();
  for (const s of list) { const c = camera(s.camera); setState(c, s); c.points = s.scores; draw(c); }
  for (const m of await (await fetch("/api/events?since=0")).json()) onEvent(m);
  const src = new EventSource("/stream");
  src.addEventListener("state", e => { const m = JSON.parse(e.data); setState(camera(m.camera), m); });
  src.addEventListener("score", e => {
    const m = JSON.parse(e.data), c = camera(m.camera); c.points.push([m.t, m.score]); draw(c);
  });
  for (const kind of ["events", "clip"]) src.addEventListener(kind, e => onEvent(JSON.parse(e.data)));
  src.onopen = () => { document.getElementById("status").textContent = "· live"; };
  src.onerror = () => { document.getElementById("status").textContent = "· reconnecting"; };
}
load();
</script></body></html>
"""
