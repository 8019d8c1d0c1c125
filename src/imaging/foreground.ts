/**
 * Foreground colours for a soft mask, so that cutouts and composites lose the old background's
 * fringe: Germer, Uelwer, Conrad, Harmeling, "Fast Multi-Level Foreground Estimation" (ICPR 2020),
 * as pymatting's estimate_foreground_ml.
 *
 * Under a soft alpha a photo's pixel mixes object and background, I = alpha*F + (1-alpha)*B. The
 * method solves for F and B coarse to fine: levels 0..L (L = ceil(log2(longest side))) of size
 * round(width^(i/L)) x round(height^(i/L)), photo and alpha sampled (nearest) from the full size,
 * F and B started from the coarser level (nearest; level 0 from the mean colours where alpha > 0.9
 * and < 0.1). Each level sweeps its pixels in place a few times, solving per pixel the 2x2 system of
 * the compositing equation plus smoothness to the 4 neighbours (weight regularization +
 * gradientWeight * |alpha difference|), F and B clamped to [0, 1].
 *
 * Shortcut for large photos: a level with more than fullLevelMaxPixels pixels sweeps only the
 * TILE x TILE tiles within bandRadius px of an edge pixel (soft, or alpha changing to the next
 * pixel); the other tiles keep the values the method starts them with. Tiles are swept in
 * tile-major order, each after refreshing a 1-px halo from its neighbours: every pixel then reads
 * the same neighbour values as in the method's row-major sweep, so a level with every tile swept
 * gives the method's result exactly (fullLevelMaxPixels = Infinity: the plain method throughout).
 */
import { assertSameSize } from "./image.js";
import type { Mask, RgbImage } from "./types.js";

export interface ForegroundOptions {
  /** Smoothness between neighbours where alpha is flat (the paper's epsilon); > 0. */
  regularization: number;
  /** Sweeps per small level. */
  smallIterations: number;
  /** Sweeps per larger level. */
  bigIterations: number;
  /** A level is small while both its sides are <= this (px). */
  smallSize: number;
  /** Extra smoothness per unit of alpha difference between neighbours. */
  gradientWeight: number;
  /** Levels up to this many pixels are swept everywhere; larger ones only near the mask's edge. */
  fullLevelMaxPixels: number;
  /** On the larger levels, the tiles within this many px of an edge pixel are swept. */
  bandRadius: number;
}

/** pymatting's defaults for the method; the shortcut starts above 1 MiP per level. */
export const FOREGROUND_DEFAULTS: Readonly<ForegroundOptions> = Object.freeze({
  regularization: 1e-5,
  smallIterations: 10,
  bigIterations: 2,
  smallSize: 32,
  gradientWeight: 1,
  fullLevelMaxPixels: 1 << 20,
  bandRadius: 8,
});

const TILE = 32;
const INV255 = 1 / 255;

/** A swept rectangle of a level: F, B (RGB interleaved) and alpha, each with a 1-px halo around it. */
interface Block {
  x0: number;
  y0: number;
  width: number;
  height: number;
  f: Float32Array;
  b: Float32Array;
  alpha: Float32Array;
}

interface Level {
  width: number;
  height: number;
  /** The photo's column (row) each column (row) of the level samples. */
  srcX: Int32Array;
  srcY: Int32Array;
  /** Tile side: the whole level when it is swept everywhere. */
  tile: number;
  tilesX: number;
  /** Index into blocks per tile, row-major; -1 for a tile not swept (it holds the coarser level's values). */
  blockOfTile: Int32Array;
  blocks: Block[];
}

/**
 * The foreground colour of every pixel: the photo's own pixel where alpha is 255, the method's
 * estimate elsewhere (where alpha is 0 too, for feathered composites just outside the mask; in the
 * tiles farther than bandRadius from the edge, that is a coarser level's estimate).
 */
export function estimateForeground(image: RgbImage, alpha: Mask, opts: Partial<ForegroundOptions> = {}): RgbImage {
  const o = { ...FOREGROUND_DEFAULTS, ...opts };
  const { width, height } = image;
  assertSameSize(image, alpha, "estimateForeground");
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`estimateForeground: size must be positive integers, got ${width}x${height}`);
  }
  if (image.data.length !== width * height * 3 || alpha.data.length !== width * height) {
    throw new RangeError(
      `estimateForeground: ${width}x${height} needs ${width * height * 3} RGB and ${width * height} alpha bytes, got ${image.data.length} and ${alpha.data.length}`,
    );
  }
  if (!(o.regularization > 0) || !(o.gradientWeight >= 0) || !(o.bandRadius >= 0)) {
    throw new RangeError("estimateForeground: regularization must be > 0, gradientWeight and bandRadius >= 0");
  }
  const photo = image.data;
  const alpha8 = alpha.data;

  // The levels a pixel's value may come from: the last one swept everywhere, then the partial ones.
  let chain: Level[] = [seedLevel(photo, alpha8)];
  // A 1x1 photo still gets one level above the seed (the method's L would be 0).
  const levels = Math.max(1, 32 - Math.clz32(Math.max(width, height) - 1));
  for (let i = 0; i <= levels; i++) {
    const w = Math.round(width ** (i / levels));
    const h = Math.round(height ** (i / levels));
    const level = makeLevel(w, h, image, alpha8, w * h <= o.fullLevelMaxPixels, Math.ceil(o.bandRadius));
    for (const block of level.blocks) startBlock(block, level, chain);
    chain = level.blockOfTile.every((slot) => slot >= 0) ? [level] : [...chain, level];
    const sweeps = w <= o.smallSize && h <= o.smallSize ? o.smallIterations : o.bigIterations;
    for (let s = 0; s < sweeps; s++) {
      for (const block of level.blocks) {
        refreshHalo(block, chain);
        sweep(block, level, photo, width, o.regularization, o.gradientWeight);
      }
    }
  }

  return { data: writeEstimate(chain, photo, alpha8, width, height), width, height };
}

/** 8-bit F at full size (the chain's last level): the photo where alpha is 255, else the finest swept estimate. */
function writeEstimate(chain: Level[], photo: Uint8Array, alpha8: Uint8Array, width: number, height: number): Uint8Array {
  const finestFirst = [...chain].reverse();
  // Per level, the level's column (row) each full-size column (row) reads, composed as readPixel maps.
  const cols: Int32Array[] = [];
  const rows: Int32Array[] = [];
  finestFirst.forEach((level, k) => {
    const finer = finestFirst[k - 1];
    const col = new Int32Array(width);
    const row = new Int32Array(height);
    for (let x = 0; x < width; x++) col[x] = finer ? Math.floor((cols[k - 1]![x]! * level.width) / finer.width) : x;
    for (let y = 0; y < height; y++) row[y] = finer ? Math.floor((rows[k - 1]![y]! * level.height) / finer.height) : y;
    cols.push(col);
    rows.push(row);
  });
  const out = new Uint8Array(width * height * 3);
  // Full-size pixels [start, end) of row y, by runs that share a tile of level k; a run on a tile not swept goes to level k + 1.
  const paintRun = (k: number, y: number, start: number, end: number): void => {
    const level = finestFirst[k]!;
    const col = cols[k]!;
    const ly = rows[k]![y]!;
    const tileRow = Math.floor(ly / level.tile) * level.tilesX;
    for (let x = start; x < end;) {
      const tile = Math.floor(col[x]! / level.tile);
      const nextTile = (tile + 1) * level.tile;
      let runEnd = x + 1;
      while (runEnd < end && col[runEnd]! < nextTile) runEnd++;
      const slot = level.blockOfTile[tileRow + tile]!;
      if (slot < 0) {
        paintRun(k + 1, y, x, runEnd);
      } else {
        const block = level.blocks[slot]!;
        const f = block.f;
        const rowStart = (ly - block.y0 + 1) * (block.width + 2) + 1 - block.x0;
        for (; x < runEnd; x++) {
          const i = y * width + x;
          const o = i * 3;
          if (alpha8[i] === 255) {
            out[o] = photo[o]!;
            out[o + 1] = photo[o + 1]!;
            out[o + 2] = photo[o + 2]!;
          } else {
            const p = (rowStart + col[x]!) * 3;
            out[o] = Math.round(f[p]! * 255);
            out[o + 1] = Math.round(f[p + 1]! * 255);
            out[o + 2] = Math.round(f[p + 2]! * 255);
          }
        }
      }
      x = runEnd;
    }
  };
  for (let y = 0; y < height; y++) paintRun(0, y, 0, width);
  return out;
}

/** The 1x1 start below level 0: mean photo colour where alpha > 0.9 (F) and < 0.1 (B); black where there is none, as pymatting. */
function seedLevel(photo: Uint8Array, alpha8: Uint8Array): Level {
  const fSum = new Float64Array(3);
  const bSum = new Float64Array(3);
  let fCount = 0;
  let bCount = 0;
  // alpha > 0.9 is >= 230 of 255, alpha < 0.1 is <= 25.
  for (let i = 0, p = 0; i < alpha8.length; i++, p += 3) {
    const a = alpha8[i]!;
    if (a >= 230) {
      fSum[0]! += photo[p]!;
      fSum[1]! += photo[p + 1]!;
      fSum[2]! += photo[p + 2]!;
      fCount++;
    } else if (a <= 25) {
      bSum[0]! += photo[p]!;
      bSum[1]! += photo[p + 1]!;
      bSum[2]! += photo[p + 2]!;
      bCount++;
    }
  }
  const block = newBlock(0, 0, 1, 1);
  const center = 4 * 3;
  for (let c = 0; c < 3; c++) {
    block.f[center + c] = (fSum[c]! * INV255) / (fCount + 1e-5);
    block.b[center + c] = (bSum[c]! * INV255) / (bCount + 1e-5);
  }
  return { width: 1, height: 1, srcX: new Int32Array(1), srcY: new Int32Array(1), tile: 1, tilesX: 1, blockOfTile: new Int32Array(1), blocks: [block] };
}

function newBlock(x0: number, y0: number, width: number, height: number): Block {
  const n = (width + 2) * (height + 2);
  return { x0, y0, width, height, f: new Float32Array(n * 3), b: new Float32Array(n * 3), alpha: new Float32Array(n) };
}

/** A level's sampling maps and its blocks, with alpha (halo included) sampled from the photo's. */
function makeLevel(width: number, height: number, photo: RgbImage, alpha8: Uint8Array, everywhere: boolean, bandRadius: number): Level {
  const srcX = new Int32Array(width);
  const srcY = new Int32Array(height);
  for (let x = 0; x < width; x++) srcX[x] = Math.floor((x * photo.width) / width);
  for (let y = 0; y < height; y++) srcY[y] = Math.floor((y * photo.height) / height);
  const tile = everywhere ? Math.max(width, height) : TILE;
  const tilesX = Math.ceil(width / tile);
  const tilesY = Math.ceil(height / tile);
  const level: Level = { width, height, srcX, srcY, tile, tilesX, blockOfTile: new Int32Array(tilesX * tilesY).fill(-1), blocks: [] };
  const swept = everywhere ? new Uint8Array(tilesX * tilesY).fill(1) : tilesNearEdges(level, alpha8, photo.width, bandRadius);
  for (let t = 0; t < swept.length; t++) {
    if (!swept[t]) continue;
    const x0 = (t % tilesX) * tile;
    const y0 = Math.floor(t / tilesX) * tile;
    const block = newBlock(x0, y0, Math.min(tile, width - x0), Math.min(tile, height - y0));
    for (let by = -1, p = 0; by <= block.height; by++) {
      const row = srcY[clamp(y0 + by, height)]! * photo.width;
      for (let bx = -1; bx <= block.width; bx++, p++) block.alpha[p] = alpha8[row + srcX[clamp(x0 + bx, width)]!]! * INV255;
    }
    level.blockOfTile[t] = level.blocks.length;
    level.blocks.push(block);
  }
  return level;
}

/** Per tile, 1 where a pixel within `radius` is soft or differs from its right or lower neighbour. */
function tilesNearEdges(level: Level, alpha8: Uint8Array, photoWidth: number, radius: number): Uint8Array {
  const { width, height, srcX, srcY, tile, tilesX } = level;
  const near = new Uint8Array(tilesX * Math.ceil(height / tile));
  for (let y = 0; y < height; y++) {
    const row = srcY[y]! * photoWidth;
    const below = y + 1 < height ? srcY[y + 1]! * photoWidth : -1;
    for (let x = 0; x < width; x++) {
      const a = alpha8[row + srcX[x]!]!;
      const edge = (a !== 0 && a !== 255) || (x + 1 < width && a !== alpha8[row + srcX[x + 1]!]) || (below >= 0 && a !== alpha8[below + srcX[x]!]);
      if (!edge) continue;
      const tx1 = Math.floor(Math.min(width - 1, x + radius) / tile);
      const ty1 = Math.floor(Math.min(height - 1, y + radius) / tile);
      for (let ty = Math.floor(Math.max(0, y - radius) / tile); ty <= ty1; ty++) {
        for (let tx = Math.floor(Math.max(0, x - radius) / tile); tx <= tx1; tx++) near[ty * tilesX + tx] = 1;
      }
    }
  }
  return near;
}

/** F and B of the block's pixels from the coarser levels (nearest), as the method starts a level. */
function startBlock(block: Block, level: Level, coarser: Level[]): void {
  const below = coarser[coarser.length - 1]!;
  for (let y = 0; y < block.height; y++) {
    const cy = Math.floor(((block.y0 + y) * below.height) / level.height);
    for (let x = 0; x < block.width; x++) {
      const cx = Math.floor(((block.x0 + x) * below.width) / level.width);
      readPixel(coarser, cx, cy, block.f, block.b, ((y + 1) * (block.width + 2) + x + 1) * 3);
    }
  }
}

/**
 * F and B of pixel (x, y) of the chain's last level, written at f[at..at+2] and b[at..at+2]. A tile
 * not swept holds its coarser level's values, down to the first level of the chain, swept everywhere.
 */
function readPixel(chain: Level[], x: number, y: number, f: Float32Array, b: Float32Array, at: number): void {
  for (let k = chain.length - 1; ; k--) {
    const level = chain[k]!;
    const slot = level.blockOfTile[Math.floor(y / level.tile) * level.tilesX + Math.floor(x / level.tile)]!;
    if (slot >= 0) {
      const block = level.blocks[slot]!;
      const i = ((y - block.y0 + 1) * (block.width + 2) + x - block.x0 + 1) * 3;
      f[at] = block.f[i]!;
      f[at + 1] = block.f[i + 1]!;
      f[at + 2] = block.f[i + 2]!;
      b[at] = block.b[i]!;
      b[at + 1] = block.b[i + 1]!;
      b[at + 2] = block.b[i + 2]!;
      return;
    }
    const next = chain[k - 1]!;
    x = Math.floor((x * next.width) / level.width);
    y = Math.floor((y * next.height) / level.height);
  }
}

/** The halo's current values: the neighbouring pixels, or the block's own edge at the level's border (the method clamps). */
function refreshHalo(block: Block, chain: Level[]): void {
  const level = chain[chain.length - 1]!;
  const { x0, y0, width, height } = block;
  const stride = width + 2;
  const fill = (bx: number, by: number) => readPixel(chain, clamp(x0 + bx, level.width), clamp(y0 + by, level.height), block.f, block.b, ((by + 1) * stride + bx + 1) * 3);
  for (let bx = 0; bx < width; bx++) {
    fill(bx, -1);
    fill(bx, height);
  }
  for (let by = 0; by < height; by++) {
    fill(-1, by);
    fill(width, by);
  }
}

/** One in-place sweep of the block's pixels, row-major (the method's per-pixel 2x2 solve). */
function sweep(block: Block, level: Level, photo: Uint8Array, photoWidth: number, regularization: number, gradientWeight: number): void {
  const { f, b, alpha, x0, y0, width, height } = block;
  const { srcX, srcY } = level;
  const stride = width + 2;
  const stride3 = stride * 3;
  for (let y = 0; y < height; y++) {
    const photoRow = srcY[y0 + y]! * photoWidth;
    for (let x = 0, p = (y + 1) * stride + 1; x < width; x++, p++) {
      const a0 = alpha[p]!;
      const a1 = 1 - a0;
      const wLeft = regularization + gradientWeight * Math.abs(a0 - alpha[p - 1]!);
      const wRight = regularization + gradientWeight * Math.abs(a0 - alpha[p + 1]!);
      const wUp = regularization + gradientWeight * Math.abs(a0 - alpha[p - stride]!);
      const wDown = regularization + gradientWeight * Math.abs(a0 - alpha[p + stride]!);
      const wSum = wLeft + wRight + wUp + wDown;
      const m00 = a0 * a0 + wSum;
      const m11 = a1 * a1 + wSum;
      const m01 = a0 * a1;
      const invDet = 1 / (m00 * m11 - m01 * m01);
      const s = (photoRow + srcX[x0 + x]!) * 3;
      for (let c = 0, q = p * 3; c < 3; c++, q++) {
        const v = photo[s + c]! * INV255;
        const rf = a0 * v + wLeft * f[q - 3]! + wRight * f[q + 3]! + wUp * f[q - stride3]! + wDown * f[q + stride3]!;
        const rb = a1 * v + wLeft * b[q - 3]! + wRight * b[q + 3]! + wUp * b[q - stride3]! + wDown * b[q + stride3]!;
        const fv = invDet * (m11 * rf - m01 * rb);
        const bv = invDet * (m00 * rb - m01 * rf);
        f[q] = fv < 0 ? 0 : fv > 1 ? 1 : fv;
        b[q] = bv < 0 ? 0 : bv > 1 ? 1 : bv;
      }
    }
  }
}

function clamp(v: number, size: number): number {
  return v < 0 ? 0 : v >= size ? size - 1 : v;
}
