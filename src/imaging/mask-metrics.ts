/**
 * Mask quality: IoU and the boundary F-measure of DAVIS (Perazzi et al. 2016): boundary pixels of
 * each mask, a predicted boundary pixel counts as correct when a ground-truth boundary pixel lies
 * within `tolerance` px (Euclidean), and the other way round for recall; F = 2PR / (P + R).
 * Masks are binary at 128 (0/255 in, as everywhere in maskfleet).
 */
import { OBJECT_THRESHOLD, squaredDistanceTo } from "./mask-ops.js";
import type { Mask } from "./types.js";

function checkSizes(a: Mask, b: Mask): void {
  if (a.width !== b.width || a.height !== b.height) throw new RangeError(`mask sizes differ: ${a.width}x${a.height} vs ${b.width}x${b.height}`);
}

/** Intersection over union; 1 when both masks are empty. */
export function maskIoU(pred: Mask, gt: Mask): number {
  checkSizes(pred, gt);
  let inter = 0;
  let union = 0;
  for (let i = 0; i < pred.data.length; i++) {
    const p = pred.data[i]! >= OBJECT_THRESHOLD;
    const g = gt.data[i]! >= OBJECT_THRESHOLD;
    if (p && g) inter++;
    if (p || g) union++;
  }
  return union === 0 ? 1 : inter / union;
}

/** DAVIS's default tolerance: ceil(0.008 x the image diagonal). */
export function defaultBoundaryTolerance(width: number, height: number): number {
  return Math.ceil(0.008 * Math.hypot(width, height));
}

interface Rect {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** Bounding rectangle (exclusive end) of the foreground of both masks; undefined when both are empty. */
function foregroundRect(a: Mask, b: Mask): Rect | undefined {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -1;
  let y1 = -1;
  const { width, height } = a;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      if (a.data[i]! >= OBJECT_THRESHOLD || b.data[i]! >= OBJECT_THRESHOLD) {
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        y1 = y;
      }
    }
  }
  return x1 < 0 ? undefined : { x0, y0, x1: x1 + 1, y1: y1 + 1 };
}

/**
 * Boundary pixels within `r` (crop coordinates): foreground pixels with a background 4-neighbour.
 * The image border is not a boundary (as DAVIS), so a mask reaching the edge has none there.
 */
function boundaryOf(mask: Mask, r: Rect): Mask {
  const w = r.x1 - r.x0;
  const out = new Uint8Array(w * (r.y1 - r.y0));
  const { width, height, data } = mask;
  const bg = (x: number, y: number) => x >= 0 && y >= 0 && x < width && y < height && data[y * width + x]! < OBJECT_THRESHOLD;
  for (let y = r.y0; y < r.y1; y++) {
    for (let x = r.x0; x < r.x1; x++) {
      if (data[y * width + x]! < OBJECT_THRESHOLD) continue;
      if (bg(x - 1, y) || bg(x + 1, y) || bg(x, y - 1) || bg(x, y + 1)) out[(y - r.y0) * w + (x - r.x0)] = 255;
    }
  }
  return { data: out, width: w, height: r.y1 - r.y0 };
}

export interface BoundaryScore {
  f: number;
  precision: number;
  recall: number;
  /** The matching tolerance used, in px. */
  tolerance: number;
}

/**
 * DAVIS boundary F of a predicted mask against the ground truth. tolerance: px (default
 * ceil(0.008 x image diagonal)). Both boundaries empty: 1; one empty: 0.
 */
export function boundaryF(pred: Mask, gt: Mask, tolerance = defaultBoundaryTolerance(gt.width, gt.height)): BoundaryScore {
  checkSizes(pred, gt);
  const rect = foregroundRect(pred, gt);
  if (!rect) return { f: 1, precision: 1, recall: 1, tolerance };
  const predBoundary = boundaryOf(pred, rect);
  const gtBoundary = boundaryOf(gt, rect);
  const pb = predBoundary.data;
  const gb = gtBoundary.data;
  let np = 0;
  let ng = 0;
  for (let i = 0; i < pb.length; i++) {
    if (pb[i]) np++;
    if (gb[i]) ng++;
  }
  if (np === 0 && ng === 0) return { f: 1, precision: 1, recall: 1, tolerance };
  if (np === 0 || ng === 0) return { f: 0, precision: np === 0 ? 1 : 0, recall: ng === 0 ? 1 : 0, tolerance };
  // Every boundary pixel lies in the crop, so distances measured inside it are exact.
  const toGt = squaredDistanceTo(gtBoundary, true);
  const toPred = squaredDistanceTo(predBoundary, true);
  const t2 = tolerance * tolerance;
  let pHit = 0;
  let gHit = 0;
  for (let i = 0; i < pb.length; i++) {
    if (pb[i] && toGt[i]! <= t2) pHit++;
    if (gb[i] && toPred[i]! <= t2) gHit++;
  }
  const precision = pHit / np;
  const recall = gHit / ng;
  const f = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  return { f, precision, recall, tolerance };
}
