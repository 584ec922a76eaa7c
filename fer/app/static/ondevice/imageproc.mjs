// Pixel operations of the on-device engine, written to give what the Python pipeline's OpenCV
// calls give (OpenCV 5.1): cv2.warpAffine (bilinear, float coordinates and weights, as 5.x computes
// them), cv2.resize INTER_AREA and INTER_LINEAR. The parity test (tests/test_ondevice.py) holds
// them to the Python pipeline's probabilities, boxes and maps.
//
// An image is {data: Uint8Array (H*W*C, row-major, interleaved), width, height, channels}.

const f32 = Math.fround;

// OpenCV's saturate_cast<uchar>(float): round half to even, then clamp.
export function toByte(v) {
  let r = Math.round(v);
  if (r - v === 0.5 && (r & 1)) r -= 1;
  return r < 0 ? 0 : r > 255 ? 255 : r;
}

// The inverse of a 2x3 affine map, as cv2.warpAffine inverts it (in double).
export function invertAffine(m) {
  const [a, b, c, d, e, f] = m;
  let det = a * e - b * d;
  det = det !== 0 ? 1 / det : 0;
  const i0 = e * det, i1 = -b * det, i3 = -d * det, i4 = a * det;
  return [i0, i1, -i0 * c - i1 * f, i3, i4, -i3 * c - i4 * f];
}

// cv2.warpAffine(src, m, (width, height), INTER_LINEAR, border) for uint8 images; m maps source
// pixels to destination pixels (float32 values, as the pipeline passes them). border: "constant"
// (zeros) or "replicate".
export function warpAffine(src, m, width, height, border) {
  const { data: s, width: sw, height: sh, channels: cn } = src;
  // OpenCV 5.1 inverts the (float32) map in double and finds the source positions in double; the
  // weights and the blend are float32.
  const inv = invertAffine(m.map(f32));
  const out = new Uint8Array(width * height * cn);
  const replicate = border === "replicate";
  const px = new Float32Array(4 * cn);
  for (let y = 0; y < height; y++) {
    const rowX = inv[1] * y + inv[2], rowY = inv[4] * y + inv[5];
    for (let x = 0; x < width; x++) {
      const sx = inv[0] * x + rowX, sy = inv[3] * x + rowY;
      const ix = Math.floor(sx), iy = Math.floor(sy);
      const ax = f32(sx - ix), ay = f32(sy - iy);
      const o = (y * width + x) * cn;
      if (ix >= 0 && iy >= 0 && ix < sw - 1 && iy < sh - 1) {
        // All four neighbours inside: the common case, without the border logic.
        const b0 = (iy * sw + ix) * cn, b1 = b0 + sw * cn;
        for (let c = 0; c < cn; c++) {
          const p00 = s[b0 + c], p01 = s[b0 + cn + c], p10 = s[b1 + c], p11 = s[b1 + cn + c];
          const top = f32(p00 + f32(ax * (p01 - p00)));
          const bottom = f32(p10 + f32(ax * (p11 - p10)));
          out[o + c] = toByte(f32(top + f32(ay * f32(bottom - top))));
        }
        continue;
      }
      if (!replicate && (ix >= sw || ix + 1 < 0 || iy >= sh || iy + 1 < 0)) continue;  // all zeros
      for (let k = 0; k < 4; k++) {
        let cx = ix + (k & 1), cy = iy + (k >> 1);
        let inside = cx >= 0 && cx < sw && cy >= 0 && cy < sh;
        if (!inside && replicate) {
          cx = cx < 0 ? 0 : cx >= sw ? sw - 1 : cx;
          cy = cy < 0 ? 0 : cy >= sh ? sh - 1 : cy;
          inside = true;
        }
        const base = (cy * sw + cx) * cn;
        for (let c = 0; c < cn; c++) px[k * cn + c] = inside ? s[base + c] : 0;
      }
      for (let c = 0; c < cn; c++) {
        const p00 = px[c], p01 = px[cn + c], p10 = px[2 * cn + c], p11 = px[3 * cn + c];
        const top = f32(p00 + f32(ax * f32(p01 - p00)));
        const bottom = f32(p10 + f32(ax * f32(p11 - p10)));
        out[o + c] = toByte(f32(top + f32(ay * f32(bottom - top))));
      }
    }
  }
  return { data: out, width, height, channels: cn };
}

// cv2's INTER_AREA table for one axis: parallel arrays of destination, source and weight.
function areaTable(ssize, dsize) {
  const scale = ssize / dsize;
  const tab = { dst: [], src: [], weight: [], push([d, sIndex, w]) { this.dst.push(d); this.src.push(sIndex); this.weight.push(w); } };
  for (let dx = 0; dx < dsize; dx++) {
    const fsx1 = dx * scale, fsx2 = fsx1 + scale;
    const cell = Math.min(scale, ssize - fsx1);
    let sx1 = Math.ceil(fsx1), sx2 = Math.floor(fsx2);
    sx2 = Math.min(sx2, ssize - 1);
    sx1 = Math.min(sx1, sx2);
    if (sx1 - fsx1 > 1e-3) tab.push([dx, sx1 - 1, f32((sx1 - fsx1) / cell)]);
    for (let sx = sx1; sx < sx2; sx++) tab.push([dx, sx, f32(1 / cell)]);
    if (fsx2 - sx2 > 1e-3) tab.push([dx, sx2, f32(Math.min(Math.min(fsx2 - sx2, 1), cell) / cell)]);
  }
  return { dst: Int32Array.from(tab.dst), src: Int32Array.from(tab.src), weight: Float32Array.from(tab.weight) };
}

// cv2.resize(src, (width, height), interpolation=INTER_AREA) when shrinking (both scales >= 1).
export function resizeArea(src, width, height) {
  const { data: s, width: sw, height: sh, channels: cn } = src;
  const out = new Uint8Array(width * height * cn);
  const sx = sw / width, sy = sh / height;
  if (Number.isInteger(sx) && Number.isInteger(sy)) {
    // OpenCV's fast path for whole-number scales: the mean of each block, rounded half up.
    const area = sx * sy, half = Math.floor(area / 2);
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < cn; c++) {
      let sum = 0;
      for (let j = 0; j < sy; j++) for (let i = 0; i < sx; i++) sum += s[((y * sy + j) * sw + x * sx + i) * cn + c];
      out[(y * width + x) * cn + c] = area === 4 ? (sum + 2) >> 2 : toByte(f32(sum * f32(1 / area)));
    }
    return { data: out, width, height, channels: cn };
  }
  const xtab = areaTable(sw, width), ytab = areaTable(sh, height);
  const buf = new Float32Array(width * cn), sum = new Float32Array(width * cn);
  let prev = -1;
  const flush = (dy) => { for (let i = 0; i < sum.length; i++) out[dy * width * cn + i] = toByte(sum[i]); };
  const xn = xtab.dst.length;
  for (let t = 0; t < ytab.dst.length; t++) {
    const dy = ytab.dst[t], beta = ytab.weight[t];
    buf.fill(0);
    const row = ytab.src[t] * sw * cn;
    for (let u = 0; u < xn; u++) {
      const d = xtab.dst[u] * cn, from = row + xtab.src[u] * cn, alpha = xtab.weight[u];
      for (let c = 0; c < cn; c++) buf[d + c] = f32(buf[d + c] + f32(alpha * s[from + c]));
    }
    if (dy !== prev) {
      if (prev >= 0) flush(prev);
      for (let i = 0; i < sum.length; i++) sum[i] = f32(beta * buf[i]);
      prev = dy;
    } else {
      for (let i = 0; i < sum.length; i++) sum[i] = f32(sum[i] + f32(beta * buf[i]));
    }
  }
  if (prev >= 0) flush(prev);
  return { data: out, width, height, channels: cn };
}

// One axis of cv2's INTER_LINEAR: source index and weight of the left neighbour per output pixel.
function linearTable(ssize, dsize) {
  const scale = ssize / dsize, index = new Int32Array(dsize), frac = new Float32Array(dsize);
  for (let d = 0; d < dsize; d++) {
    let f = f32((d + 0.5) * scale - 0.5);
    let i = Math.floor(f);
    f = f32(f - i);
    if (i < 0) { i = 0; f = 0; }
    if (i >= ssize - 1) { i = ssize - 1; f = 0; }
    index[d] = i; frac[d] = f;
  }
  return { index, frac };
}

// cv2.resize(src, (width, height), interpolation=INTER_LINEAR) for uint8: OpenCV's 11-bit fixed point.
export function resizeLinear(src, width, height) {
  const { data: s, width: sw, height: sh, channels: cn } = src;
  const xt = linearTable(sw, width), yt = linearTable(sh, height);
  const scaleOne = 2048;
  const ax = new Int32Array(width * 2), rows = [new Int32Array(width * cn), new Int32Array(width * cn)];
  for (let x = 0; x < width; x++) {
    ax[2 * x] = Math.round((1 - xt.frac[x]) * scaleOne);
    ax[2 * x + 1] = Math.round(xt.frac[x] * scaleOne);
  }
  const horizontal = (srcY, row) => {
    for (let x = 0; x < width; x++) {
      const i0 = xt.index[x], i1 = Math.min(i0 + 1, sw - 1);
      for (let c = 0; c < cn; c++) {
        row[x * cn + c] = s[(srcY * sw + i0) * cn + c] * ax[2 * x] + s[(srcY * sw + i1) * cn + c] * ax[2 * x + 1];
      }
    }
  };
  const out = new Uint8Array(width * height * cn);
  for (let y = 0; y < height; y++) {
    const y0 = yt.index[y], y1 = Math.min(y0 + 1, sh - 1);
    const b0 = Math.round((1 - yt.frac[y]) * scaleOne), b1 = Math.round(yt.frac[y] * scaleOne);
    horizontal(y0, rows[0]);
    horizontal(y1, rows[1]);
    for (let i = 0; i < width * cn; i++) {
      const v = (((b0 * (rows[0][i] >> 4)) >> 16) + ((b1 * (rows[1][i] >> 4)) >> 16) + 2) >> 2;
      out[y * width * cn + i] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return { data: out, width, height, channels: cn };
}

// cv2.resize(map, (size, size), interpolation=INTER_LINEAR) for a float32 (h, w) map.
export function resizeMap(map, w, h, width, height) {
  const xt = linearTable(w, width), yt = linearTable(h, height);
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    const y0 = yt.index[y], y1 = Math.min(y0 + 1, h - 1), fy = yt.frac[y];
    for (let x = 0; x < width; x++) {
      const x0 = xt.index[x], x1 = Math.min(x0 + 1, w - 1), fx = xt.frac[x];
      const top = map[y0 * w + x0] * (1 - fx) + map[y0 * w + x1] * fx;
      const bottom = map[y1 * w + x0] * (1 - fx) + map[y1 * w + x1] * fx;
      out[y * width + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

// cv2.resize for a crop, as fer.models.preprocess_array and fer.crops.box_crop choose the filter:
// INTER_AREA when shrinking, INTER_LINEAR when growing.
export function resize(src, size) {
  if (src.width === size && src.height === size) return src;
  return src.width >= size ? resizeArea(src, size, size) : resizeLinear(src, size, size);
}
