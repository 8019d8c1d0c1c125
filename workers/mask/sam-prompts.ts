/**
 * Prompt tensors shared by the point-taking SAM adapters (sam2.ts, hf-sam.ts): each box becomes its
 * two corners labelled 2 (top-left) and 3 (bottom-right), followed by the box's own points
 * (label 1 = object, 0 = background), all mapped into the model's input frame; boxes with fewer
 * points are padded with (0, 0) and the format's "not a point" label, so all boxes fit one
 * [boxes, points, 2] tensor.
 */
import { InputError } from "../../shared/errors.js";
import type { Box } from "../../shared/types.js";

export interface PromptBatch {
  /** [boxes, points, 2] in the model's frame. */
  coords: Float32Array;
  /** [boxes, points]. */
  labels: number[];
  boxes: number;
  points: number;
}

/** Point prompts of each box: corners (labels 2, 3) then its points, padded with `padLabel`. */
export function boxPrompts(boxes: readonly Box[], toFrame: (x: number, y: number) => [number, number], padLabel: number): PromptBatch {
  const perBox = boxes.map((b) => [
    { x: b.x0, y: b.y0, label: 2 },
    { x: b.x1, y: b.y1, label: 3 },
    ...(b.points ?? []).map((p) => ({ x: p.x, y: p.y, label: p.label as number })),
  ]);
  const points = Math.max(...perBox.map((p) => p.length));
  const coords = new Float32Array(boxes.length * points * 2);
  const labels: number[] = new Array<number>(boxes.length * points).fill(padLabel);
  perBox.forEach((pts, i) =>
    pts.forEach((p, j) => {
      coords.set(toFrame(p.x, p.y), (i * points + j) * 2);
      labels[i * points + j] = p.label;
    }),
  );
  return { coords, labels, boxes: boxes.length, points };
}

/** Box points must be finite with label 0 or 1. */
export function checkPoints(boxes: readonly Box[]): void {
  boxes.forEach((b, i) =>
    (b.points ?? []).forEach((p, j) => {
      if (!Number.isFinite(p.x) || !Number.isFinite(p.y) || (p.label !== 0 && p.label !== 1)) {
        throw new InputError(`segment: point ${j} of box ${i} (${p.x}, ${p.y}, label ${String(p.label)}) must be finite with label 0 or 1`);
      }
    }),
  );
}
