// The kiosk page: one WebSocket (/api/live) carries a JSON update, then the JPEG it announces.
// It reconnects by itself (server restart, network), needs no input, and loads nothing external.
"use strict";
const stats = { updates: 0, pictures: 0, boxes: 0, events: 0, delays: [], connected: false, reconnects: 0 };
window.microexpStats = stats;  // read by tests and the benchmark (frame-to-page delay)

const view = document.getElementById("view"), ctx = view.getContext("2d");
const traceCanvas = document.getElementById("trace"), tctx = traceCanvas.getContext("2d");
const stateEl = document.getElementById("state"), ausEl = document.getElementById("aus");
const emotionEl = document.getElementById("emotion"), eventsEl = document.getElementById("events");
let last = null, waitingPicture = null, stateShownAt = 0, trace = [], auRows = {}, retry = 500, status = {};

function setState(text, down) {
  if (stateEl.textContent !== text) stateEl.textContent = text;
  if (stateEl.classList.contains("down") !== !!down) stateEl.classList.toggle("down", !!down);
}

function buildAus(names) {
  ausEl.textContent = "";
  auRows = {};
  for (const name of names) {
    const row = document.createElement("div"); row.className = "au";
    const label = document.createElement("span"); label.textContent = name;
    const bar = document.createElement("div"); bar.className = "bar";
    const fill = document.createElement("div"); fill.className = "fill"; bar.appendChild(fill);
    const value = document.createElement("span"); value.className = "value"; value.textContent = "–";
    row.append(label, bar, value);
    ausEl.appendChild(row);
    auRows[name] = { row, fill, value };
  }
}

// Writes to the page only where something changed: a kiosk's browser often shares the device's CPU.
function setText(el, text) { if (el.textContent !== text) el.textContent = text; }

function showFace(face) {
  for (const [name, r] of Object.entries(auRows)) {
    const p = face && face.success ? face.au[name] : null;
    const width = p == null ? "0" : Math.round(100 * p) + "%";
    if (r.fill.style.width !== width) r.fill.style.width = width;
    setText(r.value, p == null ? "–" : p.toFixed(2));
    const on = !!(face && face.au_present[name]);
    if (r.row.classList.contains("on") !== on) r.row.classList.toggle("on", on);
  }
  setText(emotionEl, face && face.emotion ? `${face.emotion.name} ${face.emotion.p.toFixed(2)}` :
    (face && face.success ? "–" : "no face"));
}

function addEvents(events) {
  for (const e of events) {
    const li = document.createElement("li");
    const peak = Object.entries(e.peak_au || {}).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ");
    li.textContent = `#${e.id} face ${e.face_id}, ${e.kind}: onset ${e.onset_time.toFixed(3)} s, apex ${e.apex_time.toFixed(3)} s, ` +
      `offset ${e.offset_time.toFixed(3)} s (${e.duration_ms} ms) `;
    const span = document.createElement("span"); span.className = "peak"; span.textContent = peak;
    li.appendChild(span);
    li.dataset.eventId = e.id;
    eventsEl.prepend(li);
    stats.events += 1;
  }
  while (eventsEl.children.length > 100) eventsEl.lastChild.remove();
}

function drawTrace() {
  const w = traceCanvas.width, h = traceCanvas.height;
  tctx.fillStyle = "#0b0d0f"; tctx.fillRect(0, 0, w, h);
  if (trace.length < 2) return;
  const t1 = trace[trace.length - 1][0], t0 = t1 - (status.trace_s || 10);
  const x = t => (t - t0) / (t1 - t0 || 1) * w;
  const line = (index, scale, colour) => {
    tctx.strokeStyle = colour; tctx.beginPath();
    let moved = false;
    for (const p of trace) {
      if (p[index] == null) { moved = false; continue; }
      const y = h - Math.min(p[index] / scale, 1) * (h - 4) - 2;
      if (moved) tctx.lineTo(x(p[0]), y); else { tctx.moveTo(x(p[0]), y); moved = true; }
    }
    tctx.stroke();
  };
  line(1, 1, "#3ec46d");
  line(2, 2, "#4ea3ff");
}

function onUpdate(m) {
  stats.updates += 1;
  last = m;
  if (m.trace.length) {
    if (trace.length && m.trace[0][0] < trace[trace.length - 1][0]) trace = [];  // the source started again
    trace.push(...m.trace);
    const t1 = trace[trace.length - 1][0];
    trace = trace.filter(p => p[0] >= t1 - 10);
  }
  addEvents(m.events);
  showFace(m.faces[0]);
  drawTrace();
  const now = performance.now();
  if (now - stateShownAt < 500) { waitingPicture = m.picture ? m : null; return; }  // the status line twice a second
  stateShownAt = now;
  const faces = m.faces.filter(f => f.success).length;
  setState(`${m.state}, frame ${m.frame}, ${faces} face${faces === 1 ? "" : "s"}, ${m.latency_ms.toFixed(1)} ms per frame` +
    (stats.lastDelay != null ? `, ${Math.round(stats.lastDelay)} ms behind the camera` : ""));
  waitingPicture = m.picture ? m : null;
}

async function onPicture(blob) {
  const m = waitingPicture;
  if (!m) return;
  const received = Date.now() / 1000;
  const bitmap = await createImageBitmap(blob);
  if (view.width !== bitmap.width || view.height !== bitmap.height) {
    view.width = bitmap.width; view.height = bitmap.height;
  }
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const k = view.width / m.size[0];
  ctx.lineWidth = 2; ctx.font = "14px system-ui, sans-serif";
  let boxes = 0;
  for (const f of m.faces) {
    if (!f.success || !f.box) continue;
    const [x1, y1, x2, y2] = f.box.map(v => v * k);
    ctx.strokeStyle = f.action != null && f.action > 0.5 ? "#ff5a4e" : "#3ec46d";
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    ctx.fillStyle = ctx.strokeStyle; ctx.fillText(`face ${f.face_id}`, x1, Math.max(12, y1 - 4));
    boxes += 1;
  }
  // When the frame was captured, drawn into the picture; the delay is its receipt here.
  const delay = (received - m.captured) * 1000;
  ctx.fillStyle = "rgba(0,0,0,.6)"; ctx.fillRect(0, view.height - 20, 260, 20);
  ctx.fillStyle = "#e8ecef";
  ctx.fillText(`captured ${new Date(m.captured * 1000).toISOString().slice(11, 23)} (+${delay.toFixed(0)} ms)`, 4, view.height - 5);
  stats.pictures += 1; stats.boxes = boxes; stats.lastDelay = delay;
  stats.delays.push(delay);
  if (stats.delays.length > 5000) stats.delays.splice(0, 1000);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(scheme + location.host + "/api/live");
  ws.binaryType = "blob";
  ws.onopen = () => { retry = 500; stats.connected = true; };
  ws.onmessage = e => {
    if (typeof e.data !== "string") { onPicture(e.data); return; }
    const m = JSON.parse(e.data);
    if (m.type === "hello") {
      status = m; buildAus(m.aus); trace = [];
      eventsEl.textContent = "";  // the server sends the events it keeps again (after a restart, its own)
      document.getElementById("notes").textContent = (m.notes || []).join(" ");
      document.getElementById("about").hidden = !(m.notes || []).length;
      setState(m.state + (m.message ? ": " + m.message : ""));
    } else {
      onUpdate(m);
    }
  };
  ws.onclose = e => {
    stats.connected = false; stats.reconnects += 1;
    setState(e.code === 1013 ? `server busy (${e.reason}), trying again…` : "disconnected, reconnecting…", true);
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 3000);
  };
}

connect();
