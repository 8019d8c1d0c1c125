/**
 * Prompt templates, as the old notebook built its prompts: `{label}` (what was detected, e.g.
 * "car") and `{color}` (the dominant colour of the photo's background, e.g. "blue") are filled per
 * image once its mask is known.
 */
import { ConfigError } from "../runtime/errors.js";
import { OBJECT_THRESHOLD } from "../imaging/mask-ops.js";
import type { Mask, RgbImage } from "../imaging/types.js";

export interface PromptVars {
  label: string;
  color: string;
}

const placeholder = /\{([^{}]*)\}/g;
const known = new Set<string>(["label", "color"]);

/** Refuses a template naming anything but {label} and {color}. */
export function checkPromptTemplate(template: string, key = "prompts"): void {
  for (const m of template.matchAll(placeholder)) {
    if (!known.has(m[1] as string)) throw new ConfigError(key, `unknown placeholder {${m[1]}} in ${JSON.stringify(template)}; use {label} or {color}`);
  }
}

export function fillPrompt(template: string, vars: PromptVars): string {
  return template.replace(placeholder, (whole, name: string) => (name === "label" ? vars.label : name === "color" ? vars.color : whole));
}

/** Colour words a prompt can use, with a representative sRGB value each. */
const colorWords: readonly [string, number, number, number][] = [
  ["black", 20, 20, 20],
  ["white", 240, 240, 240],
  ["grey", 128, 128, 128],
  ["red", 200, 30, 30],
  ["orange", 240, 140, 30],
  ["yellow", 240, 220, 40],
  ["green", 40, 150, 50],
  ["blue", 40, 80, 200],
  ["purple", 120, 50, 160],
  ["pink", 240, 150, 190],
  ["brown", 120, 75, 40],
  ["beige", 225, 205, 165],
];

/**
 * The colour word most of the background (mask below the object threshold) is nearest to; every
 * `step`-th pixel is looked at. "white" when there is no background at all.
 */
export function dominantColorName(image: RgbImage, mask: Mask, step = 4): string {
  const votes = new Array<number>(colorWords.length).fill(0);
  const { data } = image;
  for (let i = 0; i < mask.data.length; i += step) {
    if (mask.data[i]! >= OBJECT_THRESHOLD) continue;
    const r = data[i * 3]!;
    const g = data[i * 3 + 1]!;
    const b = data[i * 3 + 2]!;
    let best = 0;
    let bestDist = Infinity;
    colorWords.forEach(([, cr, cg, cb], k) => {
      const d = (r - cr) ** 2 + (g - cg) ** 2 + (b - cb) ** 2;
      if (d < bestDist) {
        bestDist = d;
        best = k;
      }
    });
    votes[best]!++;
  }
  const winner = votes.indexOf(Math.max(...votes));
  return votes[winner] ? (colorWords[winner] as (typeof colorWords)[number])[0] : "white";
}
