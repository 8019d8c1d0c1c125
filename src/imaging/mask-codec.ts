/** A stored mask.png back to a Mask: the stages that read the mask (generate, finalize, a reviewed mask) share this one reading. */
import sharp from "sharp";
import type { Mask } from "./types.js";

/** The first channel of a mask PNG (grey, or RGB edited by hand): 0 = background, 255 = object. */
export async function decodeMask(png: Buffer): Promise<Mask> {
  const { data, info } = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height };
}
