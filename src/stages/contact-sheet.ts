/**
 * Contact sheet: a JPEG grid of tiles (original | mask | results ...), each scaled to a common
 * height with its caption underneath. Captions are SVG text in a generic sans-serif font.
 */
import sharp, { type OverlayOptions } from "sharp";
import { channelsOf, sharpRaw } from "../imaging/image.js";
import type { Mask, RgbImage } from "../imaging/types.js";

export interface ContactSheetTile {
  /** An RGB image or a one-channel mask. */
  image: RgbImage | Mask;
  caption: string;
}

export interface ContactSheetOptions {
  /** Height of every image cell in pixels (default 256). */
  tileHeight?: number;
  /** Cells per row (default 4). */
  columns?: number;
  /** Tiles beyond this many are left out, and a note under the grid says so (default 24). */
  maxTiles?: number;
  /** An extra line under the grid, e.g. "3 results failed". */
  note?: string;
}

export const DEFAULT_MAX_TILES = 24;

const PAD = 8;
const SHEET_BACKGROUND = { r: 240, g: 240, b: 240 };
const FONT = "DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif";

export async function contactSheet(tiles: readonly ContactSheetTile[], opts: ContactSheetOptions = {}): Promise<Buffer> {
  const tileHeight = opts.tileHeight ?? 256;
  const columns = opts.columns ?? 4;
  const maxTiles = opts.maxTiles ?? DEFAULT_MAX_TILES;
  for (const [k, v, min] of [
    ["tileHeight", tileHeight, 16],
    ["columns", columns, 1],
    ["maxTiles", maxTiles, 1],
  ] as const) {
    if (!Number.isInteger(v) || v < min) throw new RangeError(`contactSheet: ${k} must be an integer >= ${min}, got ${v}`);
  }
  if (tiles.length === 0) throw new RangeError("contactSheet: no tiles");

  const shown = tiles.slice(0, maxTiles);
  const notes: string[] = [];
  if (tiles.length > shown.length) notes.push(`showing the first ${shown.length} of ${tiles.length} images`);
  if (opts.note) notes.push(opts.note);

  // Cells share one width: the widest tile at tileHeight, capped at 3:1 (wider tiles letterbox).
  const cellWidth = Math.min(3 * tileHeight, Math.max(...shown.map((t) => Math.max(1, Math.round((t.image.width * tileHeight) / t.image.height)))));
  const fontSize = Math.min(24, Math.max(10, Math.round(tileHeight / 18)));
  const captionHeight = Math.round(fontSize * 1.6);
  const cols = Math.min(columns, shown.length);
  const rows = Math.ceil(shown.length / cols);
  const noteHeight = notes.length * captionHeight;
  const width = PAD + cols * (cellWidth + PAD);
  const height = PAD + rows * (tileHeight + captionHeight + PAD) + noteHeight;

  const layers: OverlayOptions[] = [];
  const texts: string[] = [];
  const maxChars = Math.max(4, Math.floor(cellWidth / (fontSize * 0.6)));
  for (const [i, tile] of shown.entries()) {
    const x = PAD + (i % cols) * (cellWidth + PAD);
    const y = PAD + Math.floor(i / cols) * (tileHeight + captionHeight + PAD);
    let pipeline = sharpRaw(tile.image).resize(cellWidth, tileHeight, { fit: "inside" });
    // Masks (one channel) become grey RGB so every layer matches the sheet.
    if (channelsOf(tile.image) === 1) pipeline = pipeline.toColourspace("srgb");
    const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
    layers.push({
      input: data,
      raw: { width: info.width, height: info.height, channels: info.channels },
      left: x + Math.floor((cellWidth - info.width) / 2),
      top: y + Math.floor((tileHeight - info.height) / 2),
    });
    texts.push(textElement(x + cellWidth / 2, y + tileHeight + captionHeight * 0.72, fontSize, "middle", clip(tile.caption, maxChars)));
  }
  for (const [k, note] of notes.entries()) {
    const y = height - noteHeight + k * captionHeight + captionHeight * 0.72;
    texts.push(textElement(PAD, y, fontSize, "start", clip(note, Math.floor((width - 2 * PAD) / (fontSize * 0.6)))));
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${texts.join("")}</svg>`;
  layers.push({ input: Buffer.from(svg), left: 0, top: 0 });

  return sharp({ create: { width, height, channels: 3, background: SHEET_BACKGROUND } })
    .composite(layers)
    .jpeg({ quality: 85 })
    .toBuffer();
}

function textElement(x: number, y: number, size: number, anchor: "start" | "middle", text: string): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" font-family="${FONT}" font-size="${size}" ` + `text-anchor="${anchor}" fill="#222">${escapeXml(text)}</text>`;
}

/** Shorten to at most n characters, marking the cut with an ellipsis. */
function clip(text: string, n: number): string {
  const chars = [...text.replace(/\s+/g, " ").trim()];
  return chars.length <= n ? chars.join("") : `${chars.slice(0, n - 1).join("")}…`;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c]!);
}
