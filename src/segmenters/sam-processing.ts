/**
 * SAM pre/post-processing as the models were trained (segment_anything's ResizeLongestSide,
 * Sam.preprocess and SamOnnxModel.mask_postprocessing), as pure functions on typed arrays:
 *
 * - resize so the longest side is 1024 (sizes as get_preprocess_shape: int(side * scale + 0.5)),
 *   equal to PIL's BILINEAR value for value (see resizeLongestSide);
 * - normalise 0-255 RGB with the ImageNet mean/std, pad bottom-right with zeros to 1024 x 1024, CHW;
 * - box corners scaled by (newW / origW, newH / origH);
 * - mask logits 256 x 256 -> bilinear to 1024 x 1024 -> crop to the resized size -> bilinear to the
 *   original size -> > 0, written straight into a 0/255 mask (PyTorch F.interpolate bilinear,
 *   align_corners=False; the 1024 x 1024 intermediate is computed only inside the crop).
 */
import type { Box, RgbImage } from "../imaging/types.js";
import { resizePillowBilinear } from "./pillow-resize.js";

export const SAM_INPUT_SIDE = 1024;
export const SAM_LOW_RES_SIDE = 256;
export const SAM_PIXEL_MEAN = [123.675, 116.28, 103.53] as const;
export const SAM_PIXEL_STD = [58.395, 57.12, 57.375] as const;

export interface Size {
  width: number;
  height: number;
}

/** ResizeLongestSide.get_preprocess_shape: scale = long / max(h, w); side = int(side * scale + 0.5). */
export function samResizeShape(size: Size, longest = SAM_INPUT_SIDE): Size {
  const scale = longest / Math.max(size.width, size.height);
  return { width: Math.floor(size.width * scale + 0.5), height: Math.floor(size.height * scale + 0.5) };
}

/**
 * The image resized so its longest side is `longest`, as ResizeLongestSide.apply_image (PIL
 * BILINEAR through torchvision): equal to Pillow value for value, enlarging and shrinking
 * (see pillow-resize.ts).
 */
export async function resizeLongestSide(image: RgbImage, longest = SAM_INPUT_SIDE): Promise<RgbImage> {
  const { width, height } = samResizeShape(image, longest);
  if (width === image.width && height === image.height) return image;
  return { data: resizePillowBilinear(image, 3, width, height), width, height };
}

/** Raw 0-255 RGB as float32 HWC: the input of encoders exported with preprocessing inside. */
export function toHwcFloat(image: RgbImage): Float32Array {
  return Float32Array.from(image.data);
}

/** (px - mean) / std per channel, CHW, zero-padded bottom-right to side x side: Sam.preprocess. */
export function normalizePadChw(image: RgbImage, side = SAM_INPUT_SIDE): Float32Array {
  const { width, height, data } = image;
  if (width > side || height > side) throw new RangeError(`normalizePadChw: ${width}x${height} does not fit in ${side}x${side}`);
  const out = new Float32Array(3 * side * side);
  for (let c = 0; c < 3; c++) {
    const mean = SAM_PIXEL_MEAN[c] as number;
    const inv = 1 / (SAM_PIXEL_STD[c] as number);
    const plane = c * side * side;
    for (let y = 0; y < height; y++) {
      let src = y * width * 3 + c;
      const row = plane + y * side;
      for (let x = 0; x < width; x++, src += 3) out[row + x] = (data[src]! - mean) * inv;
    }
  }
  return out;
}

/** Box corners in the resized frame: x * newW / origW, y * newH / origH (ResizeLongestSide.apply_boxes). */
export function scaleBox(box: Box, original: Size, resized: Size): [number, number, number, number] {
  const sx = resized.width / original.width;
  const sy = resized.height / original.height;
  return [box.x0 * sx, box.y0 * sy, box.x1 * sx, box.y1 * sy];
}

/** For each of the first `count` of `outLen` outputs: the two source indices and the weight of the second. */
interface AxisMap {
  i0: Int32Array;
  i1: Int32Array;
  w: Float32Array;
}

/** Source positions of PyTorch's bilinear, align_corners=False: (d + 0.5) * in / out - 0.5, clamped at 0. */
function axisMap(inLen: number, outLen: number, count: number): AxisMap {
  const scale = inLen / outLen;
  const map: AxisMap = { i0: new Int32Array(count), i1: new Int32Array(count), w: new Float32Array(count) };
  for (let d = 0; d < count; d++) {
    const src = Math.max((d + 0.5) * scale - 0.5, 0);
    const i0 = Math.min(Math.floor(src), inLen - 1);
    map.i0[d] = i0;
    map.i1[d] = Math.min(i0 + 1, inLen - 1);
    map.w[d] = src - i0;
  }
  return map;
}

/**
 * Output index d of two bilinear stages (`inner`: low-res -> 1024 frame, `outer`: crop -> output)
 * as taps on low-res indices j, j + 1, j + 2: out = (1 - f) * mid[m0] + f * mid[m1] with
 * mid[m] = (1 - g) * low[i0(m)] + g * low[i1(m)]; m1 is m0 or m0 + 1, so the taps span j..j+2.
 */
function composedTaps(inner: AxisMap, outer: AxisMap, d: number): [number, number, number, number] {
  const m0 = outer.i0[d]!;
  const m1 = outer.i1[d]!;
  const f = outer.w[d]!;
  const j = inner.i0[m0]!;
  const t = [0, 0, 0];
  t[0]! += (1 - f) * (1 - inner.w[m0]!);
  t[inner.i1[m0]! - j]! += (1 - f) * inner.w[m0]!;
  t[inner.i0[m1]! - j]! += f * (1 - inner.w[m1]!);
  t[inner.i1[m1]! - j]! += f * inner.w[m1]!;
  return [j, t[0]!, t[1]!, t[2]!];
}

/**
 * mask_postprocessing, fused: low-res logits -> (bilinear to 1024 x 1024, crop to the resized size,
 * bilinear to the original size), calling `row(y, ...)` with each output row as a weighted sum of
 * up to three rows of `cols` (the low-res rows already interpolated horizontally through both
 * stages). Both stages are linear and separable and the crop only selects indices, so this equals
 * the two-stage computation up to float rounding, without the 1024-wide intermediate and with about
 * three multiply-adds per output pixel.
 */
function upscaleRows(
  lowRes: Float32Array,
  lowSide: number,
  resized: Size,
  original: Size,
  row: (y: number, a: Float32Array, ca: number, b: Float32Array, cb: number, c: Float32Array, cc: number) => void,
): void {
  if (lowRes.length < lowSide * lowSide) throw new RangeError(`mask logits: expected ${lowSide}x${lowSide} values, got ${lowRes.length}`);
  const W = original.width;
  // Horizontal: low-res column -> resized column (stage 1) -> original column (stage 2), per low row.
  const x1 = axisMap(lowSide, SAM_INPUT_SIDE, resized.width);
  const x2 = axisMap(resized.width, W, W);
  const i0 = new Int32Array(W);
  const i1 = new Int32Array(W);
  const wa = new Float32Array(W);
  const i2 = new Int32Array(W);
  const wb = new Float32Array(W);
  const wc = new Float32Array(W);
  for (let x = 0; x < W; x++) {
    const [j, t0, t1, t2] = composedTaps(x1, x2, x);
    i0[x] = j;
    i1[x] = Math.min(j + 1, lowSide - 1);
    i2[x] = Math.min(j + 2, lowSide - 1);
    wa[x] = t0;
    wb[x] = t1;
    wc[x] = t2;
  }
  const cols = Array.from({ length: lowSide }, () => new Float32Array(W));
  for (let r = 0; r < lowSide; r++) {
    const base = r * lowSide;
    const out = cols[r]!;
    for (let x = 0; x < W; x++) out[x] = wa[x]! * lowRes[base + i0[x]!]! + wb[x]! * lowRes[base + i1[x]!]! + wc[x]! * lowRes[base + i2[x]!]!;
  }
  // Vertical: the same composition on rows, with up to three low rows per output row.
  const y1 = axisMap(lowSide, SAM_INPUT_SIDE, resized.height);
  const y2 = axisMap(resized.height, original.height, original.height);
  for (let y = 0; y < original.height; y++) {
    const [j, t0, t1, t2] = composedTaps(y1, y2, y);
    const at = (k: number) => cols[Math.min(j + k, lowSide - 1)]!;
    row(y, at(0), t0, at(1), t1, at(2), t2);
  }
}

/**
 * Low-res mask logits (lowSide x lowSide, e.g. a view into low_res_masks) -> binary mask of the
 * original size: 255 where the upscaled logit > threshold (SAM's mask_threshold, 0), else 0.
 */
export function upscaleMask(lowRes: Float32Array, lowSide: number, resized: Size, original: Size, threshold = 0): Uint8Array {
  const W = original.width;
  const out = new Uint8Array(W * original.height);
  upscaleRows(lowRes, lowSide, resized, original, (y, a, ca, b, cb, c, cc) => {
    const o = y * W;
    if (cc === 0) for (let x = 0; x < W; x++) out[o + x] = ca * a[x]! + cb * b[x]! > threshold ? 255 : 0;
    else for (let x = 0; x < W; x++) out[o + x] = ca * a[x]! + cb * b[x]! + cc * c[x]! > threshold ? 255 : 0;
  });
  return out;
}

/** The same upscaling, keeping the float logits (for comparisons and soft masks). */
export function upscaleMaskLogits(lowRes: Float32Array, lowSide: number, resized: Size, original: Size): Float32Array {
  const W = original.width;
  const out = new Float32Array(W * original.height);
  upscaleRows(lowRes, lowSide, resized, original, (y, a, ca, b, cb, c, cc) => {
    const o = y * W;
    for (let x = 0; x < W; x++) out[o + x] = ca * a[x]! + cb * b[x]! + cc * c[x]!;
  });
  return out;
}
