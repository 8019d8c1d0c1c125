/**
 * Just enough of a ZIP reader to take model files out of a downloaded archive: the central
 * directory (ZIP64 included, archives of a few GB are normal here), stored or deflated entries,
 * streamed (never a whole entry in memory) with the CRC-32 checked at the end.
 */
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { PassThrough, Transform, type Readable } from "node:stream";
import { createInflateRaw, crc32 } from "node:zlib";

export interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const EOCD = 0x06054b50;
const EOCD64_LOCATOR = 0x07064b50;
const EOCD64 = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const MAX32 = 0xffffffff;

class ZipError extends Error {
  override readonly name = "ZipError";
}

async function readAt(path: string, position: number, length: number): Promise<Buffer> {
  const fh = await open(path, "r");
  try {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await fh.read(buf, 0, length, position);
    if (bytesRead !== length) throw new ZipError(`${path}: unexpected end of file (truncated archive?)`);
    return buf;
  } finally {
    await fh.close();
  }
}

/** The archive's entries, from its central directory. */
export async function listZip(path: string): Promise<ZipEntry[]> {
  const fh = await open(path, "r");
  const size = (await fh.stat()).size;
  await fh.close();
  const tailLen = Math.min(size, 22 + 0xffff);
  const tail = await readAt(path, size - tailLen, tailLen);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new ZipError(`${path}: not a ZIP archive (no end-of-central-directory record)`);
  let count = tail.readUInt16LE(eocd + 10);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdSize === MAX32 || cdOffset === MAX32) {
    const loc = eocd - 20;
    if (loc < 0 || tail.readUInt32LE(loc) !== EOCD64_LOCATOR) throw new ZipError(`${path}: ZIP64 locator missing`);
    const rec = await readAt(path, Number(tail.readBigUInt64LE(loc + 8)), 56);
    if (rec.readUInt32LE(0) !== EOCD64) throw new ZipError(`${path}: ZIP64 end record missing`);
    count = Number(rec.readBigUInt64LE(32));
    cdSize = Number(rec.readBigUInt64LE(40));
    cdOffset = Number(rec.readBigUInt64LE(48));
  }
  const cd = await readAt(path, cdOffset, cdSize);
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== CENTRAL) throw new ZipError(`${path}: corrupt central directory`);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    const entry: ZipEntry = {
      name: cd.toString("utf8", p + 46, p + 46 + nameLen),
      flags: cd.readUInt16LE(p + 8),
      method: cd.readUInt16LE(p + 10),
      crc32: cd.readUInt32LE(p + 16),
      compressedSize: cd.readUInt32LE(p + 20),
      size: cd.readUInt32LE(p + 24),
      localHeaderOffset: cd.readUInt32LE(p + 42),
    };
    readZip64Extra(cd.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen), entry);
    entries.push(entry);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/** ZIP64 extra field (id 1): 8-byte values for the fields whose 4-byte value is 0xffffffff, in order. */
function readZip64Extra(extra: Buffer, e: ZipEntry): void {
  for (let q = 0; q + 4 <= extra.length;) {
    const id = extra.readUInt16LE(q);
    const len = extra.readUInt16LE(q + 2);
    if (id === 1) {
      let r = q + 4;
      const next = () => {
        const v = Number(extra.readBigUInt64LE(r));
        r += 8;
        return v;
      };
      if (e.size === MAX32) e.size = next();
      if (e.compressedSize === MAX32) e.compressedSize = next();
      if (e.localHeaderOffset === MAX32) e.localHeaderOffset = next();
      return;
    }
    q += 4 + len;
  }
}

/** A stream of the entry's uncompressed bytes; it errors if the size or CRC-32 does not match. */
export async function openZipEntry(path: string, entry: ZipEntry): Promise<Readable> {
  if (entry.flags & 1) throw new ZipError(`${path}: ${entry.name} is encrypted`);
  if (entry.method !== 0 && entry.method !== 8) throw new ZipError(`${path}: ${entry.name} uses compression method ${entry.method} (only stored and deflate are supported)`);
  const local = await readAt(path, entry.localHeaderOffset, 30);
  if (local.readUInt32LE(0) !== LOCAL) throw new ZipError(`${path}: corrupt local header for ${entry.name}`);
  const start = entry.localHeaderOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
  const raw: Readable = entry.compressedSize === 0 ? new PassThrough().end() : createReadStream(path, { start, end: start + entry.compressedSize - 1 });
  let crc = 0;
  let size = 0;
  const check = new Transform({
    transform(chunk: Buffer, _enc, done) {
      crc = crc32(chunk, crc);
      size += chunk.length;
      done(null, chunk);
    },
    flush(done) {
      if (size !== entry.size) done(new ZipError(`${path}: ${entry.name} is ${size} bytes, the directory says ${entry.size}`));
      else if (crc >>> 0 !== entry.crc32 >>> 0) done(new ZipError(`${path}: ${entry.name} fails its CRC-32 check`));
      else done();
    },
  });
  const body = entry.method === 8 ? raw.pipe(createInflateRaw()) : raw;
  raw.on("error", (err) => check.destroy(err));
  body.on("error", (err) => check.destroy(err));
  return body.pipe(check);
}
