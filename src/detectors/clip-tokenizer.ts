/**
 * A minimal CLIP BPE tokenizer that reads a Hugging Face tokenizer.json (model.vocab,
 * model.merges), enough for the short query texts of OWLv2: whitespace collapsed, lower-cased,
 * CLIP's pre-tokenisation regex, byte-level symbols (GPT-2's bytes-to-unicode table), "</w>" on
 * each word's last symbol, BPE by merge rank; then <|startoftext|> ... <|endoftext|>, truncated
 * and padded to a fixed length with the pad id (OWLv2's pad token is "!", id 0), and the
 * attention mask (1 for real tokens). A symbol the vocabulary lacks becomes the unknown token
 * (CLIP's is <|endoftext|>).
 */
import { readFile } from "node:fs/promises";
import { ModelError } from "../runtime/errors.js";

const BOS = "<|startoftext|>";
const EOS = "<|endoftext|>";
const SUFFIX = "</w>";
/** CLIP's pre-tokeniser (open_clip / transformers CLIPTokenizer). */
const WORDS = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/gu;

export interface Encoded {
  /** [texts.length * length] */
  inputIds: BigInt64Array;
  attentionMask: BigInt64Array;
  length: number;
}

/**
 * GPT-2's reversible byte -> printable character alphabet of byte-level BPE, in vocabulary order
 * (the printable bytes first, then the rest mapped from 256 up): CLIP's first 256 vocabulary entries.
 */
export function byteAlphabet(): { byte: number; char: string }[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  return bs.map((byte, i) => ({ byte, char: String.fromCodePoint(cs[i] as number) }));
}

/** byte -> its character. */
function bytesToUnicode(): string[] {
  const table: string[] = new Array<string>(256);
  for (const { byte, char } of byteAlphabet()) table[byte] = char;
  return table;
}
const BYTE_CHARS = bytesToUnicode();

export class ClipTokenizer {
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();
  readonly bosId: number;
  readonly eosId: number;
  readonly unkId: number;
  readonly padId: number;

  constructor(
    private readonly vocab: ReadonlyMap<string, number>,
    merges: readonly (readonly [string, string])[],
    special: Record<string, number>,
  ) {
    merges.forEach(([a, b], i) => this.ranks.set(`${a} ${b}`, i));
    const id = (tok: string) => special[tok] ?? vocab.get(tok);
    const bos = id(BOS);
    const eos = id(EOS);
    if (bos === undefined || eos === undefined) throw new ModelError(`CLIP tokenizer: the vocabulary has no ${BOS} or ${EOS}`);
    this.bosId = bos;
    this.eosId = eos;
    this.unkId = eos;
    this.padId = special["!"] ?? vocab.get("!") ?? 0;
  }

  /** Parses a tokenizer.json (BPE model; merges as "a b" strings or [a, b] pairs). */
  static fromJson(json: unknown, where = "tokenizer.json"): ClipTokenizer {
    const j = json as { model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[] }; added_tokens?: { id: number; content: string }[] };
    const model = j?.model;
    if (!model || typeof model.vocab !== "object" || !Array.isArray(model.merges) || (model.type !== undefined && model.type !== "BPE")) {
      throw new ModelError(`${where}: not a BPE tokenizer.json (model.vocab and model.merges expected)`);
    }
    const merges = model.merges.map((m) => (typeof m === "string" ? (m.split(" ") as [string, string]) : m));
    const special = Object.fromEntries((j.added_tokens ?? []).map((t) => [t.content, t.id]));
    return new ClipTokenizer(new Map(Object.entries(model.vocab)), merges, special);
  }

  static async load(path: string): Promise<ClipTokenizer> {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (err) {
      throw new ModelError(`${path}: cannot read the tokenizer: ${(err as Error).message}`, { cause: err });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new ModelError(`${path}: not JSON: ${(err as Error).message}`, { cause: err });
    }
    return ClipTokenizer.fromJson(json, path);
  }

  /** Token ids of one text, without BOS/EOS. */
  tokenize(text: string): number[] {
    const clean = text.normalize("NFC").replace(/\s+/g, " ").trim().toLowerCase();
    const ids: number[] = [];
    for (const m of clean.matchAll(WORDS)) {
      const word = m[0];
      if (word === BOS || word === EOS) {
        ids.push(word === BOS ? this.bosId : this.eosId);
        continue;
      }
      ids.push(...this.bpe(word));
    }
    return ids;
  }

  /** [BOS, tokens..., EOS] truncated (EOS kept) and padded to `length`, for each text. */
  encode(texts: readonly string[], length = 16): Encoded {
    const inputIds = new BigInt64Array(texts.length * length);
    const attentionMask = new BigInt64Array(texts.length * length);
    texts.forEach((text, t) => {
      const ids = [this.bosId, ...this.tokenize(text).slice(0, length - 2), this.eosId];
      for (let i = 0; i < length; i++) {
        inputIds[t * length + i] = BigInt(i < ids.length ? ids[i]! : this.padId);
        attentionMask[t * length + i] = i < ids.length ? 1n : 0n;
      }
    });
    return { inputIds, attentionMask, length };
  }

  private bpe(word: string): number[] {
    const cached = this.cache.get(word);
    if (cached) return cached;
    const chars = [...new TextEncoder().encode(word)].map((b) => BYTE_CHARS[b]!);
    let parts = chars.map((c, i) => (i === chars.length - 1 ? c + SUFFIX : c));
    while (parts.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < parts.length - 1; i++) {
        const r = this.ranks.get(`${parts[i]} ${parts[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const a = parts[best]!;
      const b = parts[best + 1]!;
      const merged: string[] = [];
      for (let i = 0; i < parts.length; i++) {
        if (i < parts.length - 1 && parts[i] === a && parts[i + 1] === b) {
          merged.push(a + b);
          i++;
        } else {
          merged.push(parts[i]!);
        }
      }
      parts = merged;
    }
    const ids = parts.map((p) => this.vocab.get(p) ?? this.unkId);
    this.cache.set(word, ids);
    return ids;
  }
}
