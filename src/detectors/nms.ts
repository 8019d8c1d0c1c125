/** Non-maximum suppression of the detectors' candidate boxes. */

/** Hard NMS: `order` is best first; a box is dropped when its IoU with a kept one exceeds `iou`. */
export function nms(boxes: Float32Array, order: number[], iou: number): number[] {
  const kept: number[] = [];
  const area = (i: number) => Math.max(0, boxes[i * 4 + 2]! - boxes[i * 4]!) * Math.max(0, boxes[i * 4 + 3]! - boxes[i * 4 + 1]!);
  for (const i of order) {
    const suppressed = kept.some((k) => {
      const w = Math.min(boxes[i * 4 + 2]!, boxes[k * 4 + 2]!) - Math.max(boxes[i * 4]!, boxes[k * 4]!);
      const h = Math.min(boxes[i * 4 + 3]!, boxes[k * 4 + 3]!) - Math.max(boxes[i * 4 + 1]!, boxes[k * 4 + 1]!);
      const inter = Math.max(0, w) * Math.max(0, h);
      return inter / (area(i) + area(k) - inter + 1e-5) > iou;
    });
    if (!suppressed) kept.push(i);
  }
  return kept;
}
