/**
 * Pillow's `Image.resize(size, Image.BILINEAR)` on 8-bit images, value for value (libImaging/
 * Resample.c): a separable triangle filter whose support widens with the shrink factor
 * (antialiased), double weights per output index normalised to sum 1 and then rounded to 22-bit
 * fixed point, and two integer passes, horizontal then vertical, each rounded to 8 bits. A pass
 * whose dimension is unchanged is skipped, as Pillow does.
 */

/** Pillow's PRECISION_BITS for 8-bit images: 32 - 8 - 2. */
const PRECISION_BITS = 22;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

export interface Image8 {
  data: Uint8Array;
  width: number;
  height: number;
}

/** Fixed-point taps of one axis: output i reads `count[i]` inputs from `first[i]`, weights at i * stride. */
interface AxisTaps {
  first: Int32Array;
  count: Int32Array;
  weights: Int32Array;
  stride: number;
}

/** Pillow's precompute_coeffs (bilinear filter, box = the whole axis) then normalize_coeffs_8bpc. */
function axisTaps(inSize: number, outSize: number): AxisTaps {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // the bilinear filter's support is 1
  const inverse = 1 / filterScale;
  const stride = Math.ceil(support) * 2 + 1;
  const taps: AxisTaps = { first: new Int32Array(outSize), count: new Int32Array(outSize), weights: new Int32Array(outSize * stride), stride };
  const raw = new Float64Array(stride);
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    const first = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - first;
    let sum = 0;
    for (let k = 0; k < count; k++) {
      raw[k] = Math.max(0, 1 - Math.abs((k + first - center + 0.5) * inverse));
      sum += raw[k]!;
    }
    // The pixel under `center` always has weight, so sum > 0; weights are never negative, so
    // Pillow's (int)(w * ONE + 0.5) is a floor.
    for (let k = 0; k < count; k++) taps.weights[i * stride + k] = Math.floor((raw[k]! / sum) * ONE + 0.5);
    taps.first[i] = first;
    taps.count[i] = count;
  }
  return taps;
}

/** Pillow's clip8: the accumulator (never negative here) shifted back to 8 bits, at most 255. */
function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS;
  return v > 255 ? 255 : v;
}

/** Resamples each row of `src` (width `inWidth`) to `taps.first.length` pixels. */
function horizontalPass(src: Uint8Array, inWidth: number, rows: number, channels: number, taps: AxisTaps): Uint8Array {
  const outWidth = taps.first.length;
  const { first, count, weights, stride } = taps;
  const out = new Uint8Array(outWidth * rows * channels);
  let o = 0;
  for (let y = 0; y < rows; y++) {
    const row = y * inWidth * channels;
    for (let x = 0; x < outWidth; x++) {
      const start = row + first[x]! * channels;
      const n = count[x]!;
      const w0 = x * stride;
      for (let c = 0; c < channels; c++) {
        let acc = HALF;
        for (let k = 0, p = start + c; k < n; k++, p += channels) acc += src[p]! * weights[w0 + k]!;
        out[o++] = clip8(acc);
      }
    }
  }
  return out;
}

/** Resamples the columns of `src` (rows of `rowLength` values) to `taps.first.length` rows. */
function verticalPass(src: Uint8Array, rowLength: number, taps: AxisTaps): Uint8Array {
  const outHeight = taps.first.length;
  const { first, count, weights, stride } = taps;
  const out = new Uint8Array(outHeight * rowLength);
  const acc = new Int32Array(rowLength);
  for (let y = 0; y < outHeight; y++) {
    acc.fill(HALF);
    for (let k = 0; k < count[y]!; k++) {
      const w = weights[y * stride + k]!;
      const row = (first[y]! + k) * rowLength;
      for (let i = 0; i < rowLength; i++) acc[i]! += src[row + i]! * w;
    }
    const o = y * rowLength;
    for (let i = 0; i < rowLength; i++) out[o + i] = clip8(acc[i]!);
  }
  return out;
}

/**
 * `src` (interleaved 8-bit, `channels` per pixel) resized to width x height exactly as Pillow's
 * BILINEAR resize of an L, RGB or CMYK image (each channel on its own; note Pillow premultiplies
 * RGBA and LA by alpha first, which this does not). Pillow's ybox trimming (horizontal pass only
 * on the rows the vertical pass reads) is omitted: with the bilinear filter every row is read.
 */
export function resizePillowBilinear(src: Image8, channels: number, width: number, height: number): Uint8Array {
  if (!Number.isInteger(channels) || channels < 1 || channels > 4) throw new RangeError(`resizePillowBilinear: ${channels} channels (1-4 supported)`);
  for (const side of [src.width, src.height, width, height]) {
    if (!Number.isInteger(side) || side < 1) throw new RangeError(`resizePillowBilinear: ${src.width}x${src.height} -> ${width}x${height}`);
  }
  if (src.data.length !== src.width * src.height * channels) {
    throw new RangeError(`resizePillowBilinear: ${src.data.length} bytes for ${src.width}x${src.height}x${channels}`);
  }
  let data = src.data;
  if (width !== src.width) data = horizontalPass(data, src.width, src.height, channels, axisTaps(src.width, width));
  if (height !== src.height) data = verticalPass(data, width * channels, axisTaps(src.height, height));
  return data === src.data ? data.slice() : data;
}
