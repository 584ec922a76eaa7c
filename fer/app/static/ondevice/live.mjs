// Live on this device: the webcam preview's frames analysed in the page by engine.mjs and drawn
// into the Live tab's own result block (#live-saliency, #live-model-input, #live-gradcam,
// #live-top-k, #live-second-opinion, the boxes over the preview). No frame, crop or map is sent:
// this module makes no request at all after the engine's files are loaded.
//
// #live-where chooses: "device" (the default where the browser can run the engine) or "server"
// (Gradio's stream, frames sent to the app). #live-top-k carries data-where (the mode in use) and
// data-frame (frames analysed so far in that mode). ?ondevice=off in the page's URL forces the
// server path (tests, and a visitor who wants it).

import { CROP_SIZE, createEngine, supported } from "./engine.mjs";
import { resize } from "./imageproc.mjs";

const BASE = new URL("./", import.meta.url).href;
// fer.tracking.FaceTracker's defaults and fer.tracking.DEFAULT_SMOOTHING.
const IOU_THRESHOLD = 0.3, MAX_MISSED = 5, SMOOTHING = 0.6;
const TOP_K = 3;
const $ = (selector) => document.querySelector(selector);

const state = {
  engine: null, loading: null, unusable: null,
  running: false, busy: false, frames: 0, serverFrames: 0, started: 0,
  tracks: [], nextId: 1, agreement: { total: 0, same: 0 },
};

// ---- where: the #live-where radio (Gradio renders each choice as an <input type=radio>)
function chosen() {
  const input = document.querySelector("#live-where input[type=radio]:checked");
  if (!input) return null;
  const text = `${input.value} ${input.closest("label")?.textContent || ""}`.toLowerCase();
  return text.includes("server") ? "server" : "device";
}

function choose(where) {
  for (const input of document.querySelectorAll("#live-where input[type=radio]")) {
    const text = `${input.value} ${input.closest("label")?.textContent || ""}`.toLowerCase();
    if (text.includes(where)) { input.click(); return; }
  }
}

function note(text) {
  const el = $("#live-where-note");
  if (el) el.textContent = text;
}

// The mode in use: the choice, unless this browser cannot run the engine.
function where() {
  return chosen() === "device" && !state.unusable ? "device" : "server";
}

async function engine() {
  if (state.engine || state.unusable) return state.engine;
  if (!state.loading) {
    state.loading = createEngine(BASE).then((e) => { state.engine = e; return e; }, (error) => {
      fallBack(`the on-device engine could not start (${(error && error.message || error).toString().slice(0, 80)})`);
      return null;
    });
  }
  return state.loading;
}

function fallBack(reason) {
  state.unusable = reason;
  state.running = false;
  choose("server");
  // The Live tab is not the first: Gradio draws it when opened and may then set the radio back to
  // its first value without a DOM change to observe, so the choice is kept for a few seconds.
  let tries = 0;
  const keep = setInterval(() => {
    if (chosen() === "device") choose("server");
    if (++tries >= 20) clearInterval(keep);
  }, 250);
  note(`This browser cannot analyse here: ${reason}, so frames go to the server.`);
  mark();
}

// ---- the result block: a device view inside each panel, shown instead of the server's
// The server's content (the example shown before the camera starts, or the last server frame)
// stays until this page draws its own: data-shown="device" then swaps them (app.css).
function deviceView(id) {
  const host = document.getElementById(id);
  if (!host) return null;
  host.dataset.shown = "device";
  let view = host.querySelector(":scope > .fer-device");
  if (!view) {
    view = document.createElement("div");
    view.className = "fer-device";
    host.appendChild(view);
  }
  return view;
}

function mark() {
  const mode = where();
  for (const id of ["live-saliency", "live-model-input", "live-gradcam", "live-top-k", "live-second-opinion"]) {
    const host = document.getElementById(id);
    if (!host) continue;
    host.dataset.where = mode;
    if (mode === "server") delete host.dataset.shown;
  }
  const top = $("#live-top-k");
  if (top) top.dataset.frame = String(mode === "device" ? state.frames : state.serverFrames);
  const controls = $("#live-device");
  if (controls) controls.hidden = mode !== "device";
  document.body.classList.toggle("fer-on-device", mode === "device");
  hideRecord();
}

// Gradio's Record button would stream frames to the server: hidden while analysing here.
function hideRecord() {
  for (const button of document.querySelectorAll("#live-input button")) {
    const text = (button.textContent || "").trim().toLowerCase();
    if (text.startsWith("record") || text.startsWith("stop")) button.classList.toggle("fer-hidden", where() === "device");
  }
}

// One panel, in the server's own markup (models.json: fer.app.views.panels_html with a canvas for
// the picture); only the Grad-CAM caption changes from frame to frame.
function panel(id, template, caption, draw) {
  const view = deviceView(id);
  if (!view) return;
  if (!view.firstChild) {
    view.innerHTML = template;
    const canvas = view.querySelector("canvas");
    canvas.width = canvas.height = CROP_SIZE;
  }
  if (caption) view.querySelector(".fer-caption").textContent = caption;
  draw(view.querySelector("canvas"));
}

// fer.viz.heatmap_overlay (alpha 0.5) on the crop, with one of fer.viz's colour tables.
function overlay(canvas, crop, heat, table) {
  const ctx = canvas.getContext("2d"), img = ctx.createImageData(crop.width, crop.height);
  for (let i = 0, n = crop.width * crop.height; i < n; i++) {
    const h = Math.min(Math.max(heat[i], 0), 1), w = 0.25 * h + 0.25, k = Math.floor(h * 255) * 3;
    for (let c = 0; c < 3; c++) img.data[4 * i + c] = Math.round(crop.data[3 * i + c] * (1 - w) + table[k + c] * w);
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

// fer.viz.cnn_view: the network's input, enlarged with visible pixels.
function cnnView(canvas, crop, net) {
  const small = resize(crop, net.input_size), n = net.input_size;
  const img = new ImageData(n, n);
  for (let i = 0; i < n * n; i++) {
    const [r, g, b] = [small.data[3 * i], small.data[3 * i + 1], small.data[3 * i + 2]];
    const grey = Math.round(0.299 * r + 0.587 * g + 0.114 * b);
    const px = net.colour === "grey" ? [grey, grey, grey] : [r, g, b];
    img.data.set([...px, 255], 4 * i);
  }
  const tmp = new OffscreenCanvas(n, n);
  tmp.getContext("2d").putImageData(img, 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
}

function topK(probs, labels) {
  const view = deviceView("live-top-k");
  if (!view) return;
  const order = labels.map((_, i) => i).sort((a, b) => probs[b] - probs[a] || a - b).slice(0, TOP_K);
  view.innerHTML = '<p class="fer-title">Top expressions (smoothed)</p>' + order.map((i) =>
    `<div class="fer-bar-row"><span class="fer-bar-label">${labels[i]}</span><span class="fer-bar">`
    + `<span style="width:${(100 * probs[i]).toFixed(0)}%"></span></span>`
    + `<span class="fer-bar-value">${(100 * probs[i]).toFixed(0)}%</span></div>`).join("");
}

function secondOpinion(face, e) {
  const view = deviceView("live-second-opinion");
  if (!view) return;
  const names = e.manifest.display.network_names, [first, second] = e.networks.map((n) => n.name);
  if (!second) { view.innerHTML = ""; return; }
  if (!face.members[second]) return;  // not run on this frame: the last verdict stays
  const best = (p) => { let j = 0; p.forEach((v, i) => { if (v > p[j]) j = i; }); return j; };
  const a = best(face.members[first]), b = best(face.members[second]), labels = e.labels;
  state.agreement.total += 1;
  state.agreement.same += a === b ? 1 : 0;
  const pct = (v) => `${(100 * v).toFixed(0)}%`;
  const verdict = a === b ? "agrees" : `disagrees: ${names[first] || first} says <b>${labels[a]}</b> ${pct(face.members[first][a])}`;
  view.innerHTML = `<div class="fer-opinion"><p class="fer-title">Second opinion</p><p>${names[second] || second} `
    + `(trained on other data): <b>${labels[b]}</b> ${pct(face.members[second][b])} · ${verdict}</p>`
    + `<p>Over this session ${names[first] || first} and ${names[second] || second} agreed on `
    + `<b>${pct(state.agreement.same / state.agreement.total)}</b> of ${state.agreement.total} faces.</p></div>`;
}

// ---- tracking: fer.tracking.FaceTracker (greedy IoU matching, exponential smoothing)
function iou(a, b) {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]), h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  const inter = Math.max(w, 0) * Math.max(h, 0);
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

function track(faces) {
  const pairs = [];
  state.tracks.forEach((t, i) => faces.forEach((f, j) => pairs.push([iou(t.box, f.box), i, j])));
  pairs.sort((x, y) => y[0] - x[0] || x[1] - y[1] || x[2] - y[2]);
  const matched = new Array(faces.length).fill(null), used = new Set();
  for (const [value, i, j] of pairs) {
    if (value < IOU_THRESHOLD) break;
    if (used.has(i) || matched[j] !== null) continue;
    matched[j] = i; used.add(i);
  }
  const current = faces.map((f, j) => {
    const old = matched[j] === null ? null : state.tracks[matched[j]];
    if (!old) return { id: state.nextId++, box: f.box, probabilities: Float32Array.from(f.probabilities), missed: 0 };
    const p = old.probabilities.map((v, k) => SMOOTHING * v + (1 - SMOOTHING) * f.probabilities[k]);
    const total = p.reduce((s, v) => s + v, 0) || 1;
    return Object.assign(old, { box: f.box, probabilities: p.map((v) => v / total), missed: 0 });
  });
  const kept = state.tracks.filter((t) => !current.includes(t) && ++t.missed <= MAX_MISSED);
  state.tracks = [...current, ...kept];
  return current;
}

// ---- the loop: one frame of the preview at a time, as fast as the engine goes
const canvas = typeof OffscreenCanvas === "function" ? new OffscreenCanvas(1, 1) : null;

function preview() {
  const video = $("#live-input video");
  return video && video.srcObject && video.readyState >= 2 && video.videoWidth ? video : null;
}

async function analyse(video, e) {
  const width = video.videoWidth, height = video.videoHeight;
  canvas.width = width; canvas.height = height;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  // The preview is mirrored (the app's WebcamOptions): analyse the frame as the visitor sees it,
  // as Gradio sends it to the server, so that boxes land on the preview.
  ctx.setTransform(-1, 0, 0, 1, width, 0);
  ctx.drawImage(video, 0, 0, width, height);
  const began = performance.now();
  const frame = ctx.getImageData(0, 0, width, height);
  // The second opinion (the heavier network) on every other frame: its verdict changes slowly,
  // and this keeps the page above 25 frames/s on a modest laptop's core.
  const others = e.networks.slice(1).map((n) => n.name);
  const faces = await e.analyse({ data: frame.data, width, height, channels: 4, },
                                { skip: state.frames % 2 ? others : [] });
  if (where() !== "device") return;  // switched while this frame ran
  const tracks = track(faces);
  state.frames += 1;
  const boxes = $("#fer-live-boxes");
  const colours = e.manifest.display.label_colours, fallback = e.manifest.display.default_colour;
  const best = (p) => { let j = 0; p.forEach((v, i) => { if (v > p[j]) j = i; }); return j; };
  if (boxes) {
    boxes.dataset.boxes = JSON.stringify(tracks.map((t) => {
      const k = best(t.probabilities), label = e.labels[k];
      return [t.box[0] / width, t.box[1] / height, t.box[2] / width, t.box[3] / height,
              `#${t.id} ${label} ${(100 * t.probabilities[k]).toFixed(0)}%`, colours[label] || fallback];
    }));
  }
  const status = $("#live-device-status");
  const seconds = (performance.now() - state.started) / 1000;
  const rate = seconds > 0 ? ` · ${(state.frames / seconds).toFixed(1)} frames/s` : "";
  if (faces.length) {
    const face = faces[0], smoothed = tracks[0].probabilities, k = best(smoothed), label = e.labels[k];
    const net = e.main;
    const { panels, palettes } = e.manifest.display;
    panel("live-saliency", panels.saliency, null, (c) => overlay(c, face.crop, face.saliency, palettes.saliency));
    panel("live-model-input", panels.model_input, null, (c) => cnnView(c, face.crop, net));
    panel("live-gradcam", panels.attention, `Grad-CAM for ${label}`,
          (c) => overlay(c, face.crop, e.camFor(face, k), palettes.attention));
    topK(smoothed, e.labels);
    secondOpinion(face, e);
    if (status) status.textContent = `On this device: ${faces.length} face${faces.length > 1 ? "s" : ""}, following #${tracks[0].id} (${label})${rate}. Nothing of the frames leaves this page.`;
  } else if (status) {
    status.textContent = `On this device: no face in view${rate}. Nothing of the frames leaves this page.`;
  }
  // The page's own work per frame (read, analyse, draw), median of the last 50: data-frame-ms.
  state.costs = [...(state.costs || []).slice(-49), performance.now() - began];
  const top = $("#live-top-k");
  if (top) top.dataset.frameMs = [...state.costs].sort((a, b) => a - b)[state.costs.length >> 1].toFixed(1);
  mark();
}

async function loop() {
  try {
    if (!state.setUp) state.setUp = setUp();  // the page may be drawn before this module ran
    if (state.unusable && chosen() === "device") choose("server");  // Gradio may redraw the radio
    // Gradio's radio changes its inputs' state without an event this module can rely on: follow it here.
    if (state.setUp && where() !== state.marked) { state.marked = where(); switched(); }
    const video = preview();
    if (where() === "device" && state.running && video && !state.busy) {
      const e = await engine();
      if (e && where() === "device") {
        state.busy = true;
        if (!state.started) state.started = performance.now();
        try { await analyse(video, e); } finally { state.busy = false; }
      }
    }
  } catch (error) {
    const status = $("#live-device-status");
    if (status) status.textContent = `⚠️ This frame could not be analysed (${error && error.name || "error"}); trying the next one.`;
  }
  requestAnimationFrame(loop);
}

// ---- controls: Start / Stop of the camera in device mode (Gradio's Record is hidden then)
function stopCamera() {
  const video = $("#live-input video");
  if (video && video.srcObject) {
    video.srcObject.getTracks().forEach((t) => t.stop());
    video.pause();
    video.srcObject = null;
  }
  state.running = false;
  const boxes = $("#fer-live-boxes");
  if (boxes) boxes.dataset.boxes = "[]";
  const status = $("#live-device-status");
  if (status) status.textContent = "Camera off: released, nothing is analysed. Press Start to open it again.";
  button();
}

async function startCamera() {
  state.running = true;
  state.started = 0;
  state.frames = 0;
  const video = $("#live-input video");
  if (!video) {
    // The camera was never opened: Gradio's own "Click to Access Webcam" opens it into its preview.
    const access = [...document.querySelectorAll("#live-input button, #live-input [role=button], #live-input div")]
      .find((el) => /access webcam/i.test(el.textContent || "") && !el.querySelector("video"));
    if (access) access.click();
  } else if (!video.srcObject) {
    try {
      video.srcObject = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
      video.muted = true;
      await video.play();
    } catch (error) {
      state.running = false;
    }
  }
  button();
}

function button() {
  const b = $("#live-device-run");
  if (b) b.textContent = state.running ? "Stop" : "Start";
}

function controls() {
  if ($("#live-device") || !$("#live-where")) return;
  const box = document.createElement("div");
  box.id = "live-device";
  box.innerHTML = '<button id="live-device-run" type="button" class="fer-device-button">Start</button>'
    + '<span id="live-device-status" role="status" aria-live="polite"></span>';
  $("#live-where").after(box);
  box.querySelector("button").addEventListener("click", () => (state.running ? stopCamera() : startCamera()));
}

// The preview starting to play in device mode (Gradio's "Click to Access Webcam") starts analysis.
document.addEventListener("playing", (event) => {
  if (event.target.closest && event.target.closest("#live-input") && where() === "device") {
    state.running = true;
    button();
  }
}, true);

// Server mode: count the server's results (the top-k panel redrawn) for data-frame.
function watchServer() {
  const top = $("#live-top-k");
  if (!top || top.dataset.watched) return;
  top.dataset.watched = "1";
  new MutationObserver((changes) => {
    if (where() !== "server") return;
    if (changes.some((c) => !(c.target.closest && c.target.closest(".fer-device")) && c.type === "childList")) {
      state.serverFrames += 1;
      top.dataset.frame = String(state.serverFrames);
    }
  }).observe(top, { childList: true, subtree: true, characterData: true });
}

function setUp() {
  if (!$("#live-where")) return false;
  controls();
  watchServer();
  if (new URLSearchParams(location.search).get("ondevice") === "off") fallBack("on-device analysis is turned off for this page (?ondevice=off)");
  else if (!supported()) fallBack("no WebAssembly with SIMD");
  else engine();  // load the runtime and models now: the first result comes sooner
  mark();
  return true;
}

// Gradio draws (and redraws) the page after this module runs: set up once #live-where exists, and
// keep the marks on whatever it draws anew, once per animation frame at most.
let pending = false;
new MutationObserver(() => {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    if (!state.setUp) state.setUp = setUp();
    else mark();
  });
}).observe(document.documentElement, { childList: true, subtree: true });
function switched() {
  if (where() === "server") {
    state.running = false;
    const boxes = $("#fer-live-boxes");
    if (boxes) boxes.dataset.boxes = "[]";
  } else {
    // Gradio may be streaming to the server: its Stop ends that (and app.js releases the camera).
    const stop = [...document.querySelectorAll("#live-input button")].find((b) => /^stop/i.test((b.textContent || "").trim()));
    if (stop) stop.click();
  }
  mark();
}
requestAnimationFrame(loop);
