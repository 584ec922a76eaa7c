// The on-device engine: the Python pipeline's Live path (fer.face.FaceDetector on BlazeFace,
// fer.saliency's face prior, fer.models.preprocess_array, the CNNs and their Grad-CAM) run in the
// page on onnxruntime-web's WebAssembly backend, on models made by scripts/export_ondevice.py.
// Nothing here sends anything anywhere: frames stay in this page.
//
//   const engine = await createEngine(new URL("/ondevice/", location.href).href);
//   const faces = await engine.analyse({data, width, height, channels: 4});   // canvas RGBA
//
// Each step names the Python function it mirrors; tests/test_ondevice.py holds the two to the
// same probabilities (1e-3), boxes (2 px) and Grad-CAM (correlation 0.99) on the same frames.

import * as ort from "./vendor/ort.wasm.bundle.min.mjs";
import { resize, resizeMap, warpAffine } from "./imageproc.mjs";

const f32 = Math.fround;

// fer.crops / fer.face defaults.
export const CROP_SIZE = 224;
export const DEFAULT_MARGIN = 0.2;
// fer.blazeface: MediaPipe's merge threshold; fer.face: the detector's default confidence.
const MIN_SUPPRESSION_IOU = 0.3;
export const MIN_SCORE = 0.5;
// fer.saliency.FACE_PRIOR_REGIONS: weight, sigma x, sigma y (face-scale units), in its order.
const FACE_PRIOR = [[0.20, 0.25, 0.25], [0.20, 0.25, 0.25], [0.25, 0.30, 0.35], [0.15, 0.40, 0.20], [0.20, 1.00, 1.20]];

// RGB copy of a frame (canvas ImageData is RGBA).
export function toRgb(frame) {
  if ((frame.channels || 4) === 3) return { data: frame.data, width: frame.width, height: frame.height, channels: 3 };
  const n = frame.width * frame.height, out = new Uint8Array(n * 3), src = frame.data;
  for (let i = 0, j = 0; i < n; i++, j += 4) { out[3 * i] = src[j]; out[3 * i + 1] = src[j + 1]; out[3 * i + 2] = src[j + 2]; }
  return { data: out, width: frame.width, height: frame.height, channels: 3 };
}

// fer.blazeface.BlazeFaceLayout.anchors: (x, y) centres in [0, 1], output order.
function anchors(size, strides, perLayer) {
  const out = [];
  for (let i = 0; i < strides.length;) {
    const stride = strides[i];
    let perCell = 0;
    while (i < strides.length && strides[i] === stride) { perCell += perLayer; i++; }
    const cells = Math.ceil(size / stride);
    for (let y = 0; y < cells; y++) for (let x = 0; x < cells; x++) {
      for (let k = 0; k < perCell; k++) out.push([f32((x + 0.5) / cells), f32((y + 0.5) / cells)]);
    }
  }
  return out;
}

// fer.blazeface.weighted_nms: groups of IoU > threshold merged into their score-weighted mean.
export function weightedNms(dets, threshold = MIN_SUPPRESSION_IOU) {
  let order = dets.map((_, i) => i).sort((a, b) => dets[b].score - dets[a].score || a - b);
  const area = (b) => (b[2] - b[0]) * (b[3] - b[1]);
  const merged = [];
  while (order.length) {
    const best = dets[order[0]];
    const group = [], rest = [];
    order.forEach((index, k) => {
      const b = dets[index].box;
      const iw = Math.min(b[2], best.box[2]) - Math.max(b[0], best.box[0]);
      const ih = Math.min(b[3], best.box[3]) - Math.max(b[1], best.box[1]);
      const inter = Math.max(iw, 0) * Math.max(ih, 0);
      const union = area(b) + area(best.box) - inter;
      const iou = union > 0 ? inter / union : 0;
      (k === 0 || iou > threshold ? group : rest).push(index);
    });
    const total = group.reduce((s, i) => s + dets[i].score, 0);
    const box = [0, 0, 0, 0], points = best.keypoints.map(() => [0, 0]);
    for (const i of group) {
      const w = dets[i].score / total;
      dets[i].box.forEach((v, j) => { box[j] += w * v; });
      dets[i].keypoints.forEach(([x, y], j) => { points[j][0] += w * x; points[j][1] += w * y; });
    }
    merged.push({ score: best.score, box, keypoints: points });
    order = rest;
  }
  return merged;
}

// fer.blazeface.pixel_box: corner and size truncated to ints, bounded to the image.
function pixelBox(x0, y0, x1, y1, width, height) {
  const clamp = (v, hi) => Math.min(Math.max(Math.trunc(v), 0), hi);
  const left = clamp(x0, width), top = clamp(y0, height);
  const w = clamp(x1 - x0, width), h = clamp(y1 - y0, height);
  return [left, top, Math.min(width, left + w), Math.min(height, top + h)];
}

// fer.crops.crop_face: eye-levelled square around the box centre, border pixels repeated.
export function cropFace(image, keypoints, box, margin, size = CROP_SIZE) {
  const [x0, y0, x1, y1] = box;
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  const side = Math.max(x1 - x0, y1 - y0, 1) * (1 + 2 * margin);
  const dx = f32(keypoints[1][0] - keypoints[0][0]), dy = f32(keypoints[1][1] - keypoints[0][1]);
  const theta = Math.atan2(dy, dx), scale = size / side;
  const a = scale * Math.cos(theta), b = scale * Math.sin(theta);
  // linear = scale * [[cos, sin], [-sin, cos]]; shift = S/2 - linear @ centre
  const m = [a, b, size / 2 - (a * cx + b * cy), -b, a, size / 2 - (-b * cx + a * cy)];
  const crop = warpAffine(image, m, size, size, "replicate");
  const cropKeypoints = keypoints.map(([x, y]) => [f32(a * x + b * y + m[2]), f32(-b * x + a * y + m[5])]);
  return { crop, cropKeypoints, toCrop: m.map(f32) };
}

// fer.crops.box_crop: face-api's axis-aligned box, clipped, zero-padded to a centred square, resized.
export function boxCrop(image, box, margin, size = CROP_SIZE) {
  const [x0, y0, x1, y1] = box;
  const gx = margin * (x1 - x0), gy = margin * (y1 - y0);
  const left = Math.max(x0 - gx, 0), top = Math.max(y0 - gy, 0);
  const width = Math.min(x1 + gx - left, image.width - left), height = Math.min(y1 + gy - top, image.height - top);
  const [lp, tp, wp, hp] = [left, top, width, height].map((v) => Math.max(Math.floor(v), 0));
  if (!wp || !hp) return null;
  const side = Math.max(wp, hp), cn = image.channels;
  // fer.crops.pad_to_square: the odd pixel of padding goes after the image.
  const offX = wp < side ? Math.floor((side - wp) / 2) : 0, offY = hp < side ? Math.floor((side - hp) / 2) : 0;
  const square = new Uint8Array(side * side * cn);
  for (let y = 0; y < hp; y++) {
    const from = ((tp + y) * image.width + lp) * cn;
    square.set(image.data.subarray(from, from + wp * cn), ((offY + y) * side + offX) * cn);
  }
  return resize({ data: square, width: side, height: side, channels: cn }, size);
}

// fer.saliency.FacePrior: a Gaussian mixture over eyes, upper nose, mouth and inner face.
export function facePrior(kp, width, height) {
  const [re, le, nose, mouth] = kp;
  const mid = [(re[0] + le[0]) / 2, (re[1] + le[1]) / 2];
  const centres = [re, le, [(mid[0] + nose[0]) / 2, (mid[1] + nose[1]) / 2], mouth,
                   [(mid[0] + mouth[0]) / 2, (mid[1] + mouth[1]) / 2]];
  const scale = Math.max(Math.hypot(le[0] - re[0], le[1] - re[1]), 0.8 * Math.hypot(mouth[0] - mid[0], mouth[1] - mid[1]), 1);
  const map = new Float32Array(width * height);
  const gx = new Float64Array(width), gy = new Float64Array(height);
  FACE_PRIOR.forEach(([weight, sx, sy], k) => {
    const [cx, cy] = centres[k];
    const sigx = sx * scale, sigy = sy * scale, amp = weight / (2 * Math.PI * sigx * sigy);
    for (let x = 0; x < width; x++) gx[x] = Math.exp(-0.5 * ((x + 0.5 - cx) / sigx) ** 2);
    for (let y = 0; y < height; y++) gy[y] = amp * Math.exp(-0.5 * ((y + 0.5 - cy) / sigy) ** 2);
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) map[y * width + x] += gy[y] * gx[x];
  });
  return normalise(map);
}

// Each map divided by its peak, in [0, 1] (fer.saliency._max_normalise, fer.gradcam._to_maps).
function normalise(map) {
  let peak = 0;
  for (const v of map) if (v > peak) peak = v;
  if (peak > 1e-12) for (let i = 0; i < map.length; i++) map[i] = Math.min(Math.max(map[i] / peak, 0), 1);
  else map.fill(0);
  return map;
}

// fer.models.preprocess_array for one crop into `out` at `offset`: resize, grey or RGB, normalise.
function preprocess(crop, net, out, offset) {
  const size = net.input_size, img = resize(crop, size), d = img.data, n = size * size;
  if (net.colour === "grey") {
    const [r, g, b] = [0.299, 0.587, 0.114].map(f32), mean = net.mean[0], std = net.std[0];
    for (let i = 0; i < n; i++) {
      const v = f32(f32(f32(d[3 * i] * r) + f32(d[3 * i + 1] * g)) + f32(d[3 * i + 2] * b));
      out[offset + i] = (v / 255 - mean) / std;
    }
  } else {
    for (let c = 0; c < 3; c++) {
      const mean = net.mean[c], std = net.std[c];
      for (let i = 0; i < n; i++) out[offset + c * n + i] = (d[3 * i + c] / 255 - mean) / std;
    }
  }
}

export class Engine {
  constructor(manifest, sessions) {
    this.manifest = manifest;
    this.sessions = sessions;
    const det = manifest.detector;
    this.anchors = anchors(det.input_size, det.strides, det.anchors_per_layer);
    this.networks = Object.values(manifest.networks);
    this.main = this.networks[0];
    this.labels = this.main.labels;
  }

  // fer.blazeface.BlazeFace.__call__ then fer.face.FaceDetector.__call__'s filtering and order.
  async detect(image, { minScore = MIN_SCORE } = {}) {
    const size = this.manifest.detector.input_size, { width, height } = image;
    const longest = Math.max(width, height), s = size / longest;
    const letterbox = [s, 0, (longest - width) / 2 * s, 0, s, (longest - height) / 2 * s];
    const warped = warpAffine(image, letterbox, size, size, "constant").data;
    const input = new Float32Array(size * size * 3), k = f32(2 / 255);
    for (let i = 0; i < input.length; i++) input[i] = f32(warped[i] * k) - 1;
    const out = await this.sessions.detector.run({ input: new ort.Tensor("float32", input, [1, size, size, 3]) });
    const reg = out.regressors.data, logits = out.classificators.data;
    const minLogit = minScore <= 0 ? -Infinity : minScore >= 1 ? Infinity : Math.log(minScore / (1 - minScore));
    const found = [];
    for (let i = 0; i < this.anchors.length; i++) {
      if (!(logits[i] >= minLogit)) continue;
      const [ax, ay] = this.anchors[i], v = (j) => f32(reg[i * 16 + j] / size);
      const cx = f32(v(0) + ax), cy = f32(v(1) + ay), hw = f32(v(2) / 2), hh = f32(v(3) / 2);
      const keypoints = [];
      for (let j = 0; j < 6; j++) keypoints.push([f32(v(4 + 2 * j) + ax), f32(v(5 + 2 * j) + ay)]);
      const z = Math.min(Math.max(logits[i], -100), 100);
      found.push({ score: 1 / (1 + Math.exp(-z)), box: [cx - hw, cy - hh, cx + hw, cy + hh], keypoints });
    }
    // Input fractions → image pixels: undo the letterbox.
    const scale = f32(longest / size) * size, shiftX = -(longest - width) / 2, shiftY = -(longest - height) / 2;
    return weightedNms(found).map(({ score, box, keypoints }) => ({
      score,
      box: pixelBox(box[0] * scale + shiftX, box[1] * scale + shiftY, box[2] * scale + shiftX, box[3] * scale + shiftY,
                    width, height),
      keypoints: keypoints.map(([x, y]) => [f32(x * scale + shiftX), f32(y * scale + shiftY)]),
    })).filter((d) => d.score >= minScore && d.box[2] > d.box[0] && d.box[3] > d.box[1]);
  }

  // Pipeline.__call__ with the app's Live settings: faces, largest first, each with its crop, the
  // face prior, every network's probabilities (over the main network's labels) and the main
  // network's raw Grad-CAM maps for every class (`camFor` turns one into the picture's map).
  //
  // `skip`: names of networks other than the main one not to run on this frame (their members
  // are then missing): Live runs the second opinion on every other frame.
  async analyse(frame, { maxFaces = 10, margin = DEFAULT_MARGIN, minScore = MIN_SCORE, skip = [] } = {}) {
    const image = toRgb(frame);
    const found = (await this.detect(image, { minScore }))
      .map((d) => ({ ...d, area: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]) }))
      .sort((a, b) => b.area - a.area).slice(0, maxFaces);
    const faces = found.map((d) => {
      const { crop, cropKeypoints, toCrop } = cropFace(image, d.keypoints, d.box, margin);
      return { score: d.score, box: d.box, keypoints: d.keypoints, crop, cropKeypoints, toCrop,
               saliency: facePrior(cropKeypoints, CROP_SIZE, CROP_SIZE), members: {} };
    });
    if (!faces.length) return faces;
    for (const net of this.networks) {
      if (net !== this.main && skip.includes(net.name)) continue;
      const crops = faces.map((f, i) => (net === this.main || net.crop === "aligned" && net.margin === margin
        ? f.crop : net.crop === "box" ? boxCrop(image, found[i].box, net.margin) : cropFace(image, found[i].keypoints, found[i].box, net.margin).crop));
      const size = net.input_size, channels = net.colour === "grey" ? 1 : 3, per = channels * size * size;
      const x = new Float32Array(crops.length * per);
      crops.forEach((crop, i) => preprocess(crop, net, x, i * per));
      const out = await this.sessions[net.name].run({ x: new ort.Tensor("float32", x, [crops.length, channels, size, size]) });
      const probs = out.probabilities.data, k = net.labels.length;
      faces.forEach((face, i) => {
        face.members[net.name] = project(probs.subarray(i * k, (i + 1) * k), net.labels, this.labels);
        if (net === this.main && out.cams) {
          const [h, w] = out.cams.dims.slice(2);
          face.cams = { data: out.cams.data.slice(i * k * h * w, (i + 1) * k * h * w), h, w };
        }
      });
    }
    for (const face of faces) face.probabilities = face.members[this.main.name];
    return faces;
  }

  // fer.gradcam: the main network's map for class `index`, at the crop's size, in [0, 1].
  camFor(face, index, size = CROP_SIZE) {
    const { data, h, w } = face.cams;
    return normalise(resizeMap(data.subarray(index * h * w, (index + 1) * h * w), w, h, size, size));
  }
}

// fer.ensemble.project: probabilities over `labels` re-expressed over `onto`, renormalised.
function project(probs, labels, onto) {
  const out = new Float32Array(onto.length);
  let total = 0;
  onto.forEach((label, j) => { const i = labels.indexOf(label); if (i >= 0) { out[j] = probs[i]; total += probs[i]; } });
  if (labels.join() !== onto.join() && total > 0) for (let j = 0; j < out.length; j++) out[j] /= total;
  return out;
}

// Whether this browser can run the engine (WebAssembly with SIMD, as the vendored runtime needs).
export function supported() {
  try {
    // The smallest module that uses a v128 instruction: it validates only where SIMD is there.
    return typeof WebAssembly === "object" && WebAssembly.validate(new Uint8Array([
      0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]));
  } catch (error) {
    return false;
  }
}

// Loads the runtime and the models (from `base`, e.g. ".../ondevice/"), one thread: the page's
// own work and the camera share the visitor's cores.
export async function createEngine(base) {
  // Only the .wasm's URL: the bundle carries its own loader (a string prefix would fetch a second file).
  ort.env.wasm.wasmPaths = { wasm: new URL("vendor/ort-wasm-simd-threaded.wasm", base).href };
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  const manifest = await (await fetch(new URL("models/models.json", base))).json();
  const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
  const load = async (file) => ort.InferenceSession.create(
    new Uint8Array(await (await fetch(new URL(`models/${file}`, base))).arrayBuffer()), options);
  const sessions = { detector: await load(manifest.detector.file) };
  for (const net of Object.values(manifest.networks)) sessions[net.name] = await load(net.file);
  return new Engine(manifest, sessions);
}
