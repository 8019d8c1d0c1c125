/**
 * A quality score per image mask, so a catalog run can hold doubtful masks for review instead of
 * paying for generation. The parts (each 0-1, higher is better):
 *
 * - predictedIoU: SAM's own estimate of each mask's IoU (the decoder's iou_predictions);
 * - stability: SAM's stability score, IoU of the mask at logit thresholds +1 and -1 (a mask whose
 *   edge sits on shallow logits changes with the threshold: an unsure mask);
 * - wholeness: the share of each box's mask in its largest piece (a fragmented mask scores low);
 * - salientAgreement: where a salient model ran with SAM, the IoU of the two masks.
 *
 * score = the lowest part (the weakest evidence decides); per box, the worst box counts.
 * softBandShare (soft pixels over all pixels > 0) describes the edge and is not scored.
 */
import { objectComponentAreas } from "./mask-ops.js";
import type { Mask } from "./types.js";

export interface MaskQuality {
  score: number;
  predictedIoU?: number;
  stability?: number;
  wholeness: number;
  salientAgreement?: number;
  softBandShare: number;
}

export interface QualityInputs {
  /** Each box's mask, before clean-up. */
  masks: readonly Mask[];
  /** The model's predicted IoU per box (absent: a model without one). */
  predictedIoU?: readonly number[];
  stability?: readonly number[];
  salientAgreement?: number;
  /** The cleaned mask as written (for the soft band). */
  final: Mask;
}

const round3 = (v: number) => Math.round(v * 1000) / 1000;
const lowest = (values: readonly number[] | undefined) => (values && values.length ? Math.min(...values) : undefined);

export function maskQuality(q: QualityInputs): MaskQuality {
  const predictedIoU = lowest(q.predictedIoU);
  const stability = lowest(q.stability);
  const wholeness = lowest(q.masks.map(largestPieceShare)) ?? 0;
  const parts = [predictedIoU, stability, wholeness, q.salientAgreement].filter((v): v is number => v !== undefined);
  return {
    score: round3(Math.max(0, Math.min(1, ...parts))),
    ...(predictedIoU !== undefined && { predictedIoU: round3(predictedIoU) }),
    ...(stability !== undefined && { stability: round3(stability) }),
    wholeness: round3(wholeness),
    ...(q.salientAgreement !== undefined && { salientAgreement: round3(q.salientAgreement) }),
    softBandShare: round3(softBandShare(q.final)),
  };
}

/** The largest object piece's share of the object (1 for one piece; 0 for an empty mask). */
export function largestPieceShare(mask: Mask): number {
  const areas = objectComponentAreas(mask);
  const total = areas.reduce((a, b) => a + b, 0);
  return total === 0 ? 0 : areas[0]! / total;
}

/** Soft pixels (strictly between 0 and 255) over all pixels above 0. */
export function softBandShare(mask: Mask): number {
  let soft = 0;
  let any = 0;
  for (const v of mask.data) {
    if (v === 0) continue;
    any++;
    if (v !== 255) soft++;
  }
  return any === 0 ? 0 : soft / any;
}
