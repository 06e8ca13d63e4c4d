// digitcam's page: polls /api/state once a second, shows the MJPEG live view, lets you drag an ROI,
// preview what the model reads in it, save it, and set a meter's value. No framework, no build step.
"use strict";
const csrf = document.querySelector('meta[name="csrf"]').content;
const live = document.getElementById("live");
const canvas = document.getElementById("draw");
const ctx = canvas.getContext("2d");
const cards = {};
let frame = null;         // {width, height} of the camera frame
let drawing = null;       // the sensor whose ROI is being drawn
let drag = null;          // {x0, y0, x1, y1} in canvas pixels
let pending = {};         // sensor -> the ROI previewed and not yet saved

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

async function post(url, body) {
  const r = await fetch(url, {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: JSON.stringify(body)});
  let data;
  try { data = await r.json(); } catch (e) { data = {ok: false, error: "HTTP " + r.status}; }
  if (!r.ok || !data.ok) throw new Error(data.error || ("HTTP " + r.status));
  return data;
}

function say(name, text, isError) {
  const m = cards[name].msg;
  m.textContent = text;
  m.classList.toggle("error", !!isError);
}

function card(s) {
  const c = {root: el("div", "card")};
  c.root.dataset.sensor = s.name;
  c.root.append(el("h2", "", s.name));
  c.value = el("div", "value", "–");
  c.raw = el("div", "raw");
  c.digits = el("div", "digits");
  c.flags = el("div", "flags");
  c.roi = el("div", "roi");
  c.root.append(c.value, c.raw, c.digits, c.flags, c.roi);
  const draw = el("button", "draw", "Draw ROI");
  draw.onclick = () => startDrawing(s.name);
  c.root.append(draw);
  c.preview = el("div", "preview");
  c.preview.hidden = true;
  c.crop = el("img");
  c.crop.alt = "the crop as the model sees it";
  c.cropText = el("div", "raw");
  c.save = el("button", "save primary", "Save ROI");
  c.save.onclick = () => saveRoi(s.name);
  c.fitText = el("div", "fittext");
  c.fit = el("button", "fit", "Fit ROI to the number");
  c.fit.onclick = () => previewRoi(s.name, c.fitRoi);
  c.preview.append(c.crop, c.cropText, c.save, c.fitText, c.fit);
  c.root.append(c.preview);
  c.snippet = el("pre", "snippet");
  c.snippet.hidden = true;
  c.root.append(c.snippet);
  if (s.meter) {
    const form = el("form", "setform");
    c.input = el("input", "setvalue");
    c.input.inputMode = "numeric";
    c.input.pattern = "[0-9]{1,8}";
    c.input.placeholder = "e.g. 004711";
    const set = el("button", "set", "Set value");
    form.append(c.input, set);
    form.onsubmit = (ev) => { ev.preventDefault(); setValue(s.name); };
    c.root.append(form);
  }
  if (s.collect) {
    const show = el("button", "showcrops", "Label crops");
    show.onclick = () => loadCrops(s.name);
    c.crops = el("div", "crops");
    c.root.append(show, c.crops);
  }
  c.msg = el("div", "msg");
  c.root.append(c.msg);
  document.getElementById("sensors").append(c.root);
  return c;
}

function confColour(p) {
  const hue = Math.round(120 * Math.max(0, Math.min(1, p)));
  return "hsl(" + hue + ", 65%, 38%)";
}

function render(state) {
  frame = state.frame;
  const st = state.stats;
  document.getElementById("stats").textContent =
    "camera " + st.camera + (st.camera_error ? " (" + st.camera_error + ")" : "") +
    " · " + st.fps + " frames/s · inference " + (st.inference_ms_p50 === null ? "–" : st.inference_ms_p50 + " ms") +
    " · frame " + state.frame_no + " · errors " + st.errors +
    " · spool " + (st.queue === null ? "no broker" : st.queue) + (st.spool_in_memory ? " (in memory)" : "");
  for (const s of state.sensors) {
    const c = cards[s.name] || (cards[s.name] = card(s));
    c.value.textContent = s.value === null ? "–" : s.value;
    const raw = s.raw;
    c.raw.textContent = raw ? "raw " + (raw.value === null ? "–" : raw.value) + " (" + raw.confidence.toFixed(2) + ")" : "no reading yet";
    c.digits.replaceChildren(...(raw ? raw.digits : []).map((d) => {
      const e = el("span", "digit", d.digit);
      e.style.background = confColour(d.confidence);
      e.title = d.confidence.toFixed(2);
      return e;
    }));
    const flags = s.published && s.published.flags.length ? s.published.flags.join(", ") : "";
    c.flags.textContent = s.published ? "published " + s.published.value + " at " + s.published.timestamp + (flags ? " [" + flags + "]" : "") : "nothing published yet";
    c.roi.textContent = "roi " + (s.roi.length ? "[" + s.roi.join(", ") + "]" : "whole frame") + (s.locate ? ", locate" : "") + " · " + s.mode;
  }
}

let lost = false;   // the last poll failed: when the daemon answers again, the live view reconnects too

async function poll() {
  try {
    const r = await fetch("/api/state", {credentials: "same-origin"});
    if (r.status === 403) { location.href = "/login"; return; }
    render(await r.json());
    if (lost) { lost = false; startLive(); }
  } catch (e) {
    lost = true;
    document.getElementById("stats").textContent = "the daemon does not answer (" + e.message + ")";
  }
  setTimeout(poll, 1000);
}

function startLive() {
  live.onerror = () => setTimeout(startLive, 2000);   // the camera or the daemon is back: reconnect
  live.src = "/stream.mjpg?t=" + Date.now();
}

// ---- drawing an ROI ----

function sizeCanvas() {
  canvas.width = live.clientWidth;
  canvas.height = live.clientHeight;
}

function startDrawing(name) {
  drawing = name;
  canvas.classList.add("active");
  sizeCanvas();
  say(name, "drag a rectangle on the image");
}

function point(ev) {
  const r = canvas.getBoundingClientRect();
  return [Math.max(0, Math.min(r.width, ev.clientX - r.left)), Math.max(0, Math.min(r.height, ev.clientY - r.top))];
}

function frameRoi(d) {
  const sx = frame.width / canvas.width, sy = frame.height / canvas.height;
  const x = Math.round(Math.min(d.x0, d.x1) * sx), y = Math.round(Math.min(d.y0, d.y1) * sy);
  const w = Math.round(Math.abs(d.x1 - d.x0) * sx), h = Math.round(Math.abs(d.y1 - d.y0) * sy);
  return [x, y, Math.min(w, frame.width - x), Math.min(h, frame.height - y)];
}

function paint() {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!drag) return;
  ctx.strokeStyle = "#ff00ff";
  ctx.lineWidth = 2;
  ctx.setLineDash([6, 4]);
  ctx.strokeRect(Math.min(drag.x0, drag.x1), Math.min(drag.y0, drag.y1), Math.abs(drag.x1 - drag.x0), Math.abs(drag.y1 - drag.y0));
}

canvas.addEventListener("pointerdown", (ev) => {
  if (!drawing || !frame) return;
  canvas.setPointerCapture(ev.pointerId);
  const [x, y] = point(ev);
  drag = {x0: x, y0: y, x1: x, y1: y};
  paint();
});
canvas.addEventListener("pointermove", (ev) => {
  if (!drag) return;
  [drag.x1, drag.y1] = point(ev);
  paint();
});
canvas.addEventListener("pointerup", async (ev) => {
  if (!drag) return;
  [drag.x1, drag.y1] = point(ev);
  const name = drawing, roi = frameRoi(drag);
  canvas.classList.remove("active");
  drawing = null;
  if (roi[2] < 2 || roi[3] < 2) { drag = null; paint(); say(name, "too small: drag a larger rectangle", true); return; }
  paint();
  await previewRoi(name, roi);
});

function canvasRect(roi) {
  const sx = canvas.width / frame.width, sy = canvas.height / frame.height;
  return {x0: roi[0] * sx, y0: roi[1] * sy, x1: (roi[0] + roi[2]) * sx, y1: (roi[1] + roi[3]) * sy};
}

function readsText(roi, value, confidence) {
  return "[" + roi.join(", ") + "] reads " + (value === null ? "–" : value) + " (" + confidence.toFixed(2) + ")";
}

// what the sensor would read with this ROI; a loose one without locate gets a fitted ROI to try instead
async function previewRoi(name, roi) {
  const c = cards[name];
  try {
    const p = await post("/api/preview", {sensor: name, roi: roi});
    pending[name] = roi;
    drag = canvasRect(roi);
    paint();
    c.crop.src = p.crop;
    c.cropText.textContent = readsText(roi, p.value, p.confidence);
    c.fitRoi = p.fit ? p.fit.roi : null;
    c.fitText.textContent = p.fit ? "the number fills little of this ROI, which costs accuracy; fitted " +
      readsText(p.fit.roi, p.fit.value, p.fit.confidence) : "";
    c.fitText.hidden = c.fit.hidden = !p.fit;
    c.preview.hidden = false;
    say(name, "not saved yet");
  } catch (e) { say(name, e.message, true); }
}

async function saveRoi(name) {
  const c = cards[name];
  try {
    const r = await post("/api/roi", {sensor: name, roi: pending[name]});
    if (r.saved) {
      c.snippet.hidden = true;
      say(name, "saved to " + r.path + " (old file kept as " + r.backup + "); reloading");
    } else {
      c.snippet.textContent = r.snippet;
      c.snippet.hidden = false;
      say(name, r.error + ": paste this into the sensor's table instead", true);
    }
    drag = null;
    paint();
    c.preview.hidden = true;
  } catch (e) { say(name, e.message, true); }
}

async function setValue(name) {
  const c = cards[name];
  try {
    const r = await post("/api/set_value", {sensor: name, value: c.input.value.trim()});
    say(name, "value set to " + r.value);
  } catch (e) { say(name, e.message, true); }
}

// ---- labelling the crops the sensor kept for review (too unsure to label itself) ----

async function loadCrops(name) {
  const c = cards[name];
  try {
    const r = await fetch("/api/crops?sensor=" + encodeURIComponent(name), {credentials: "same-origin"});
    const data = await r.json();
    if (!data.ok) throw new Error(data.error);
    c.crops.replaceChildren(el("div", "raw", data.crops.length + " to review · " + data.counts.human +
      " labelled by you · " + data.counts.auto + " labelled by the meter"));
    for (const crop of data.crops) {
      const row = el("form", "crop");
      row.dataset.name = crop.name;
      const img = el("img");
      img.alt = "crop read as " + (crop.raw || "nothing");
      img.src = "/api/crop.png?sensor=" + encodeURIComponent(name) + "&name=" + encodeURIComponent(crop.name);
      const input = el("input", "label");
      input.inputMode = "numeric";
      input.value = crop.raw || "";
      const save = el("button", "savelabel", "Save label");
      row.append(img, input, save);
      row.onsubmit = async (ev) => {
        ev.preventDefault();
        try {
          const r2 = await post("/api/label", {sensor: name, name: crop.name, label: input.value.trim()});
          row.replaceChildren(el("span", "raw", "labelled " + r2.label));
        } catch (e) { say(name, e.message, true); }
      };
      c.crops.append(row);
    }
  } catch (e) { say(name, e.message, true); }
}

window.addEventListener("resize", () => { if (drawing) sizeCanvas(); });
window.addEventListener("load", () => { startLive(); poll(); });
