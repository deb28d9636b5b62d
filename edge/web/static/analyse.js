// The upload page: send a video, follow its job (the id stays in the address, so a reload or a
// later visit finds it), then show the timeline, the events and the downloads.
"use strict";
const $ = id => document.getElementById(id);
const message = $("message"), progress = $("progress");
let polling = null;

function say(text, error) {
  message.textContent = text;
  message.className = error ? "error" : "";
}

async function api(path) {
  const r = await fetch(path, { credentials: "same-origin" });
  const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

function upload(file) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/jobs");
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("X-Filename", encodeURIComponent(file.name));
    xhr.upload.onprogress = e => {
      if (e.lengthComputable) { progress.hidden = false; progress.value = e.loaded / e.total; say(`uploading ${Math.round(100 * e.loaded / e.total)}%`); }
    };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = { error: `HTTP ${xhr.status}` }; }
      if (xhr.status === 201) resolve(body); else reject(new Error(body.error || `HTTP ${xhr.status}`));
    };
    xhr.onerror = () => reject(new Error("the upload could not reach the server"));
    xhr.send(file);
  });
}

function showResult(job) {
  $("result").hidden = false;
  $("title").textContent = `Results: ${job.name}`;
  const s = job.summary;
  $("summary").textContent = `${s.frames} frames, ${s.faces} face(s), ${s.events} event(s), ${s.lost} frames without a face` +
    (s.cut ? `; ${s.cut}` : "") + (s.ended_early ? `; ${s.ended_early}` : "");
  $("notes").textContent = (s.notes || []).join(" ");
  $("about").hidden = !(s.notes || []).length;
  const base = `/api/jobs/${job.id}/files/`;
  $("timeline").src = base + "timeline.png";
  $("timeline").hidden = !job.files.includes("timeline.png");
  $("video").src = job.files.includes("annotated.webm") ? base + "annotated.webm" : "";
  const tbody = $("events"); tbody.textContent = "";
  if (!(job.events || []).length) {
    const tr = document.createElement("tr"), td = document.createElement("td");
    td.colSpan = 8; td.textContent = "no events spotted"; tr.appendChild(td); tbody.appendChild(tr);
  }
  for (const e of job.events || []) {
    const tr = document.createElement("tr");
    const peak = Object.entries(e.peak_au || {}).sort((a, b) => b[1] - a[1]).slice(0, 3)
      .map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ");
    for (const cell of [e.id, e.face_id, e.kind, e.onset_time.toFixed(3), e.apex_time.toFixed(3), e.offset_time.toFixed(3),
                        e.duration_ms.toFixed(0), peak]) {
      const td = document.createElement("td"); td.textContent = cell; tr.appendChild(td);
    }
    tbody.appendChild(tr);
  }
  const links = $("downloads"); links.textContent = "";
  for (const name of job.files) {
    const a = document.createElement("a"); a.href = base + name; a.textContent = name; a.download = name;
    links.appendChild(a);
  }
}

async function follow(id) {
  clearTimeout(polling);
  let job;
  try { job = await api(`/api/jobs/${encodeURIComponent(id)}`); } catch (err) { say(err.message, true); return; }
  const total = job.frames_total;
  if (job.state === "done") {
    progress.hidden = true; say(`done: ${job.frames_done} frames analysed`); showResult(job); listJobs(); return;
  }
  if (job.state === "failed") { progress.hidden = true; say(job.error, true); listJobs(); return; }
  progress.hidden = false;
  progress.value = total ? job.frames_done / total : 0;
  say(`${job.state}: ${job.frames_done}${total ? " of " + total : ""} frames`);
  polling = setTimeout(() => follow(id), 500);
}

async function listJobs() {
  let body;
  try { body = await api("/api/jobs"); } catch (err) { return; }
  const ul = $("jobs"); ul.textContent = "";
  for (const job of body.jobs) {
    const li = document.createElement("li"), a = document.createElement("a");
    a.href = `#job=${job.id}`; a.textContent = `${job.name} (${job.state})`;
    li.appendChild(a); ul.appendChild(li);
  }
}

function fromHash() {
  const m = /job=([0-9a-f]{32})/.exec(location.hash);
  if (m) { $("result").hidden = true; follow(m[1]); }
}

$("upload").addEventListener("submit", async e => {
  e.preventDefault();
  const file = $("file").files[0];
  if (!file) { say("choose a video file first", true); return; }
  $("result").hidden = true;
  say("");
  try {
    const job = await upload(file);
    location.hash = `job=${job.id}`;  // hashchange follows it
  } catch (err) { progress.hidden = true; say(err.message, true); }
});

window.addEventListener("hashchange", fromHash);
api("/api/status").then(s => {
  $("limits").textContent = `Videos up to ${Math.round(s.limits.max_upload_bytes / 2 ** 20)} MiB and ${s.limits.max_duration_s} s.`;
}).catch(() => {});
listJobs();
fromHash();
