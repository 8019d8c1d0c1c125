/**
 * Stable Outpaint (`us.stability.stable-outpaint-v1:0`): extends the canvas by left/right/up/down
 * pixels (0-2,000 each, at least one) and paints the new area, `creativity` 0.1-1.0. It does not
 * replace a background: maskfleet runs it first (`--extend`), e.g. to bring a product photo to a
 * marketplace's 1:1 frame, and then the configured edit on the extended canvas.
 */
import { ConfigError, InputError } from "../runtime/errors.js";
import { STABILITY_MAX_EXTEND } from "./stability-common.js";

export interface Extension {
  left: number;
  right: number;
  up: number;
  down: number;
}

/** `--extend`: pixels per side of the original, or "square" (to 1:1, split evenly). */
export type ExtendSpec = Extension | "square";

/** "l,r,u,d" (pixels), "square", or an object -> ExtendSpec; a ConfigError naming `key` otherwise. */
export function parseExtend(value: unknown, key = "extend"): ExtendSpec {
  if (value === "square") return "square";
  let parts: unknown[];
  if (typeof value === "string") parts = value.split(",").map((s) => Number(s.trim()));
  else if (Array.isArray(value)) parts = value;
  else if (value && typeof value === "object") {
    const o = value as Record<string, unknown>;
    parts = [o.left ?? 0, o.right ?? 0, o.up ?? 0, o.down ?? 0];
  } else parts = [];
  const [left, right, up, down] = parts as number[];
  const ok = parts.length === 4 && parts.every((p) => typeof p === "number" && Number.isInteger(p) && p >= 0) && parts.some((p) => (p as number) > 0);
  if (!ok) throw new ConfigError(key, `expected "left,right,up,down" in whole pixels (at least one above 0) or "square", got ${JSON.stringify(value)}`);
  return { left: left!, right: right!, up: up!, down: down! };
}

/** The extension of a width x height image, in its own pixels. */
export function extensionFor(spec: ExtendSpec, width: number, height: number): Extension {
  if (spec !== "square") return spec;
  const dx = Math.max(0, height - width);
  const dy = Math.max(0, width - height);
  return { left: Math.floor(dx / 2), right: dx - Math.floor(dx / 2), up: Math.floor(dy / 2), down: dy - Math.floor(dy / 2) };
}

/** The body fields for an extension already scaled to the sent image; an InputError past Stability's 2,000 px. */
export function outpaintFields(ext: Extension, creativity: number | undefined, prompt: string, name: string): Record<string, unknown> {
  const over = (Object.entries(ext) as [string, number][]).find(([, v]) => v > STABILITY_MAX_EXTEND);
  if (over) throw new InputError(`${name}: extending ${over[0]} by ${over[1]} px (at the size sent) is over Stability Outpaint's ${STABILITY_MAX_EXTEND} px`);
  return { ...ext, ...(creativity !== undefined && { creativity }), ...(prompt && { prompt }) };
}
