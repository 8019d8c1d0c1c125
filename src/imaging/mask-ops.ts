/**
 * Operations on masks (8-bit, 0 = background, 255 = object, values between = soft edge).
 *
 * A pixel counts as object when its value is >= 128 (the same threshold as binarize's default).
 * Connectivity: object regions are 8-connected, background regions 4-connected (the usual
 * complementary pair, so a diagonal chain of object pixels is a closed wall).
 * All functions return a new mask and leave their input untouched. Everything is pure and
 * synchronous except featherMask, which blurs through sharp.
 */
import { assertSameSize, sharpRaw } from "./image.js";
import type { Box, Mask, RgbImage } from "./types.js";

export const OBJECT_THRESHOLD = 128;

/**
 * In a soft mask, values below this are see-through: the model says the background shows there
 * (more than 7/8 transparent). The clean-up never fills them and keeps a soft region in one piece
 * down to this level.
 */
export const SEE_THROUGH_BELOW = 32;

/** Values >= threshold become 255, the rest 0. */
export function binarize(mask: Mask, threshold = OBJECT_THRESHOLD): Mask {
  const src = mask.data;
  const out = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i]! >= threshold ? 255 : 0;
  return { data: out, width: mask.width, height: mask.height };
}

/** 255 - value: object and background swap; soft edges stay soft. */
export function invertMask(mask: Mask): Mask {
  const src = mask.data;
  const out = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = 255 - src[i]!;
  return { data: out, width: mask.width, height: mask.height };
}

/** Per-pixel maximum of one or more masks of the same size. */
export function unionMasks(masks: readonly Mask[]): Mask {
  const first = masks[0];
  if (!first) throw new RangeError("unionMasks: no masks given");
  const out = Uint8Array.from(first.data);
  for (const m of masks.slice(1)) {
    assertSameSize(first, m, "unionMasks");
    const d = m.data;
    for (let i = 0; i < out.length; i++) if (d[i]! > out[i]!) out[i] = d[i]!;
  }
  return { data: out, width: first.width, height: first.height };
}

/**
 * Morphological dilation (px > 0) or erosion (px < 0) by a Euclidean disk of radius |px|:
 * the structuring element is every offset (dx, dy) with dx^2 + dy^2 <= px^2 (radius 1 is the
 * 4-neighbour cross, radius 1.5 the 3x3 square, radius 2 a 5x5 diamond-ish disk of 13 pixels).
 * Exact, in O(pixels) whatever the radius, via a Euclidean distance transform.
 * The result is binary (0/255). Outside the image counts as neither object nor background: an
 * object cut by the frame does not shrink away from the frame.
 */
export function growMask(mask: Mask, px: number): Mask {
  if (!Number.isFinite(px)) throw new RangeError(`growMask: radius must be finite, got ${px}`);
  const { width, height } = mask;
  const src = mask.data;
  const out = new Uint8Array(src.length);
  const r2 = px * px;
  if (px >= 0) {
    // Object where the nearest object pixel is within the disk.
    const dist = squaredDistanceTo(mask, true);
    for (let i = 0; i < out.length; i++) out[i] = dist[i]! <= r2 ? 255 : 0;
  } else {
    // Object where no background pixel is within the disk.
    const dist = squaredDistanceTo(mask, false);
    for (let i = 0; i < out.length; i++) out[i] = src[i]! >= OBJECT_THRESHOLD && dist[i]! > r2 ? 255 : 0;
  }
  return { data: out, width, height };
}

/**
 * Soften the edge with a Gaussian blur of standard deviation sigmaPx (through sharp/libvips).
 * The blur is centred on the edge: pixels just inside drop below 255, just outside rise above 0;
 * pixels more than about 3 sigma from any edge keep their value. sigmaPx <= 0 returns a copy;
 * values in (0, 0.3) are raised to 0.3, libvips' minimum.
 */
export async function featherMask(mask: Mask, sigmaPx: number): Promise<Mask> {
  if (!Number.isFinite(sigmaPx)) throw new RangeError(`featherMask: sigma must be finite, got ${sigmaPx}`);
  if (sigmaPx <= 0) return { data: Uint8Array.from(mask.data), width: mask.width, height: mask.height };
  // toColourspace("b-w") keeps one channel: sharp would otherwise output sRGB.
  const data = await sharpRaw({ ...mask, channels: 1 })
    .blur(Math.max(0.3, sigmaPx))
    .toColourspace("b-w")
    .raw()
    .toBuffer();
  if (data.length !== mask.data.length) throw new Error(`featherMask: sharp returned ${data.length} bytes, expected ${mask.data.length}`);
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: mask.width, height: mask.height };
}

/**
 * Runs of one class (values >= threshold when `above`, else values < threshold) row by row, labelled into connected
 * components with union-find: 8-connected (`diagonal`) or 4-connected. Working on runs instead of
 * pixels makes the flood fills of fillHoles and removeSmallIslands a scan of the bytes plus work per
 * run (a 12 MP mask: ~15 ms instead of 150-330 ms).
 */
interface Components {
  count: number;
  y: Int32Array;
  x0: Int32Array;
  /** Exclusive end. */
  x1: Int32Array;
  /** Component root of each run. */
  root: Int32Array;
}

function components(mask: Mask, threshold: number, above: boolean, diagonal: boolean): Components {
  const { width: w, height: h } = mask;
  const src = mask.data;
  let cap = Math.max(64, h * 4);
  let ys = new Int32Array(cap);
  let x0s = new Int32Array(cap);
  let x1s = new Int32Array(cap);
  let n = 0;
  const rowStart = new Int32Array(h + 1);
  for (let y = 0; y < h; y++) {
    rowStart[y] = n;
    const base = y * w;
    let x = 0;
    while (x < w) {
      while (x < w && src[base + x]! >= threshold !== above) x++;
      if (x === w) break;
      const start = x;
      while (x < w && src[base + x]! >= threshold === above) x++;
      if (n === cap) {
        cap *= 2;
        const grow = (a: Int32Array) => {
          const b = new Int32Array(cap);
          b.set(a);
          return b;
        };
        [ys, x0s, x1s] = [grow(ys), grow(x0s), grow(x1s)];
      }
      ys[n] = y;
      x0s[n] = start;
      x1s[n] = x;
      n++;
    }
  }
  rowStart[h] = n;
  const parent = new Int32Array(n);
  for (let i = 0; i < n; i++) parent[i] = i;
  const find = (i: number): number => {
    while (parent[i] !== i) {
      const p = parent[parent[i]!]!;
      parent[i] = p;
      i = p;
    }
    return i;
  };
  const d = diagonal ? 1 : 0;
  for (let y = 1; y < h; y++) {
    let a = rowStart[y - 1]!;
    const aEnd = rowStart[y]!;
    let b = aEnd;
    const bEnd = rowStart[y + 1]!;
    while (a < aEnd && b < bEnd) {
      // Runs touch when they overlap (4-connected) or overlap after growing by one pixel (8-connected).
      if (x0s[a]! < x1s[b]! + d && x0s[b]! < x1s[a]! + d) {
        const ra = find(a);
        const rb = find(b);
        if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
      }
      if (x1s[a]! < x1s[b]!) a++;
      else b++;
    }
  }
  for (let i = 0; i < n; i++) parent[i] = find(i);
  return { count: n, y: ys, x0: x0s, x1: x1s, root: parent };
}

/** Whether any value lies strictly between 0 and 255: a salient model's alpha, a feathered or merged edge. */
export function isSoftMask(mask: Mask): boolean {
  const d = mask.data;
  for (let i = 0; i < d.length; i++) if (d[i] !== 0 && d[i] !== 255) return true;
  return false;
}

export interface FillHolesOptions {
  /** Largest hole filled, in pixels (default: any size). */
  maxArea?: number;
  /**
   * Treat the mask as soft: a hole holding any see-through value (< SEE_THROUGH_BELOW) is the
   * background showing through (between spokes, in a lattice) and stays open. Default: isSoftMask.
   */
  soft?: boolean;
}

/**
 * Holes become object (255): background regions (values < 128, 4-connected) that do not touch the
 * image border, of at most maxArea pixels and, in a soft mask, with no see-through pixel. All
 * other pixels keep their value.
 */
export function fillHoles(mask: Mask, opts: FillHolesOptions = {}): Mask {
  const { width: w, height: h } = mask;
  const maxArea = opts.maxArea ?? Infinity;
  const soft = opts.soft ?? isSoftMask(mask);
  const src = mask.data;
  const c = components(mask, OBJECT_THRESHOLD, false, false);
  const keep = new Uint8Array(c.count);
  const area = new Float64Array(c.count);
  for (let i = 0; i < c.count; i++) {
    const root = c.root[i]!;
    if (c.y[i] === 0 || c.y[i] === h - 1 || c.x0[i] === 0 || c.x1[i] === w) keep[root] = 1;
    area[root]! += c.x1[i]! - c.x0[i]!;
    if (soft && !keep[root]) {
      const row = c.y[i]! * w;
      for (let x = c.x0[i]!; x < c.x1[i]!; x++) {
        if (src[row + x]! < SEE_THROUGH_BELOW) {
          keep[root] = 1;
          break;
        }
      }
    }
  }
  const out = Uint8Array.from(src);
  for (let i = 0; i < c.count; i++) {
    const root = c.root[i]!;
    if (!keep[root] && area[root]! <= maxArea) out.fill(255, c.y[i]! * w + c.x0[i]!, c.y[i]! * w + c.x1[i]!);
  }
  return { data: out, width: w, height: h };
}

/**
 * Specks go: a region of the mask (8-connected values >= SEE_THROUGH_BELOW, so a soft region and
 * the object pixels in it are one piece) with some but fewer than minArea object pixels (>= 128)
 * becomes background (0) as a whole; a faint region with no object pixel stays as it is. Object pixels inside a larger soft region are never cut out of it
 * (no pinholes). On a binary mask this is plain removal of small 8-connected object components.
 */
export function removeSmallIslands(mask: Mask, minArea: number): Mask {
  const { width: w, height: h } = mask;
  const src = mask.data;
  const out = Uint8Array.from(src);
  if (minArea <= 1) return { data: out, width: w, height: h };
  const c = components(mask, SEE_THROUGH_BELOW, true, true);
  const area = new Float64Array(c.count);
  for (let i = 0; i < c.count; i++) {
    const row = c.y[i]! * w;
    let objectPx = 0;
    for (let x = c.x0[i]!; x < c.x1[i]!; x++) if (src[row + x]! >= OBJECT_THRESHOLD) objectPx++;
    area[c.root[i]!]! += objectPx;
  }
  for (let i = 0; i < c.count; i++) {
    const a = area[c.root[i]!]!;
    if (a > 0 && a < minArea) out.fill(0, c.y[i]! * w + c.x0[i]!, c.y[i]! * w + c.x1[i]!);
  }
  return { data: out, width: w, height: h };
}

/** Pixel count of each object component (8-connected values >= 128), largest first. */
export function objectComponentAreas(mask: Mask): number[] {
  const c = components(mask, OBJECT_THRESHOLD, true, true);
  const area = new Map<number, number>();
  for (let i = 0; i < c.count; i++) area.set(c.root[i]!, (area.get(c.root[i]!) ?? 0) + c.x1[i]! - c.x0[i]!);
  return [...area.values()].sort((a, b) => b - a);
}

export interface MaskStats {
  /** Object pixels (>= 128). */
  area: number;
  /** area / (width * height), in [0, 1]. */
  fraction: number;
  /** Tight box around the object pixels; null when there are none. */
  bbox: Box | null;
}

export function maskStats(mask: Mask): MaskStats {
  const { width: w, height: h } = mask;
  const src = mask.data;
  let area = 0;
  let x0 = w;
  let y0 = h;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0, i = 0; y < h; y++) {
    for (let x = 0; x < w; x++, i++) {
      if (src[i]! < OBJECT_THRESHOLD) continue;
      area++;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      y1 = y;
    }
  }
  return {
    area,
    fraction: area / (w * h),
    bbox: area === 0 ? null : { x0, y0, x1: x1 + 1, y1: y1 + 1 },
  };
}

/**
 * The Bedrock image-editing mask: RGB, pure black (0,0,0) where the mask is object (>= 128),
 * pure white (255,255,255) elsewhere, nothing else, same size.
 */
export function toBedrockMask(mask: Mask): RgbImage {
  const src = mask.data;
  const out = new Uint8Array(src.length * 3);
  for (let i = 0, j = 0; i < src.length; i++, j += 3) {
    const v = src[i]! >= OBJECT_THRESHOLD ? 0 : 255;
    out[j] = v;
    out[j + 1] = v;
    out[j + 2] = v;
  }
  return { data: out, width: mask.width, height: mask.height };
}

const FAR = 1e20;

/**
 * Squared Euclidean distance from every pixel to the nearest pixel of the given class
 * (object when `toObject`, else background); >= FAR where the image has no such pixel.
 * Meijster-style separable exact transform: vertical distances by two row-major sweeps, then
 * Felzenszwalb & Huttenlocher's lower envelope of parabolas along each row.
 */
export function squaredDistanceTo(mask: Mask, toObject: boolean): Float64Array {
  const { width: w, height: h } = mask;
  const src = mask.data;
  const n = w * h;
  // Vertical distance (in pixels) to the nearest pixel of the class in the same column.
  const g = new Float64Array(n);
  const none = w + h; // more than any real distance
  for (let x = 0; x < w; x++) g[x] = src[x]! >= OBJECT_THRESHOLD === toObject ? 0 : none;
  for (let i = w; i < n; i++) g[i] = src[i]! >= OBJECT_THRESHOLD === toObject ? 0 : g[i - w]! + 1;
  for (let i = n - w - 1; i >= 0; i--) {
    const below = g[i + w]! + 1;
    if (below < g[i]!) g[i] = below;
  }
  const dist = new Float64Array(n);
  const f = new Float64Array(w);
  const d = new Float64Array(w);
  const v = new Int32Array(w);
  const z = new Float64Array(w + 1);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    for (let x = 0; x < w; x++) {
      const gv = g[row + x]!;
      f[x] = gv >= none ? FAR : gv * gv;
    }
    edt1d(f, w, d, v, z);
    dist.set(d, row);
  }
  return dist;
}

/** 1-D squared distance transform of f[0..n) into d (lower envelope of parabolas). */
function edt1d(f: Float64Array, n: number, d: Float64Array, v: Int32Array, z: Float64Array): void {
  let k = 0;
  v[0] = 0;
  z[0] = -Infinity;
  z[1] = Infinity;
  for (let q = 1; q < n; q++) {
    const fq = f[q]! + q * q;
    let p = v[k]!;
    let s = (fq - (f[p]! + p * p)) / (2 * (q - p));
    // z[0] is -Infinity, so k never drops below 0.
    while (s <= z[k]!) {
      k--;
      p = v[k]!;
      s = (fq - (f[p]! + p * p)) / (2 * (q - p));
    }
    k++;
    v[k] = q;
    z[k] = s;
    z[k + 1] = Infinity;
  }
  k = 0;
  for (let q = 0; q < n; q++) {
    while (z[k + 1]! < q) k++;
    const p = v[k]!;
    d[q] = (q - p) * (q - p) + f[p]!;
  }
}
