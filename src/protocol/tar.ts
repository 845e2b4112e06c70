/**
 * A small streaming tar codec for the sync and files endpoints. nanotar cannot write symlinks,
 * truncates names over 100 bytes and holds whole archives in memory; Bun.Archive is Bun-only and
 * cannot set modes. This one streams both ways (never the whole archive in memory) and uses only
 * web-standard APIs, because the CLI writes archives under Deno too.
 *
 * Writer: ustar headers, PAX `x` records for long or non-ASCII paths/link targets and huge sizes,
 * uid/gid 0 and a fixed mtime (0 unless given) so the same tree always gives the same bytes.
 * Reader: ustar (with `prefix`), GNU (`L`/`K` long names), PAX (`x` and global `g`); any other
 * entry type is an error rather than something silently skipped.
 */

export type TarBody =
  | Uint8Array
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array>
  | Iterable<Uint8Array>;

export type TarWriteEntry =
  | { type: "file"; path: string; mode: number; size: number; body: TarBody; mtime?: number }
  | { type: "symlink"; path: string; target: string; mtime?: number }
  | { type: "directory"; path: string; mode: number; mtime?: number };

export type TarEntryType =
  | "file"
  | "symlink"
  | "directory"
  | "hardlink"
  | "character-device"
  | "block-device"
  | "fifo";

export interface TarHeader {
  path: string;
  type: TarEntryType;
  /** Permission bits as stored (may include setuid etc.; callers normalise). */
  mode: number;
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** Target of a symlink or hard link, else "". */
  linkpath: string;
  uid: number;
  gid: number;
}

export interface TarReadEntry {
  header: TarHeader;
  /**
   * The entry's content. Read it to the end or abandon it before asking for the next entry; the
   * reader skips whatever was not read.
   */
  body: ReadableStream<Uint8Array>;
  /**
   * The whole content in one buffer, for entries small enough to hold: one exact read instead of a
   * stream hop and a copy per chunk. The buffer may share memory with the archive stream's chunks:
   * read it, don't modify it. Use either this or `body`, not both.
   */
  bytes(): Promise<Uint8Array>;
}

/** A malformed or unsupported archive. */
export class TarFormatError extends Error {
  override readonly name = "TarFormatError";
}

const BLOCK = 512;
/** 11 octal digits: the largest size a plain ustar header can hold. */
const MAX_OCTAL_SIZE = 8 ** 11 - 1;
const encoder = new TextEncoder();

// ---------------------------------------------------------------------------------------------
// Writer

/** Streams a tar archive of `entries`; nothing but the current chunk is held in memory. */
export function createTarStream(
  entries: AsyncIterable<TarWriteEntry> | Iterable<TarWriteEntry>,
): ReadableStream<Uint8Array> {
  const chunks = tarChunks(entries);
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const next = await chunks.next();
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        } catch (error) {
          controller.error(error);
        }
      },
      async cancel(reason) {
        await chunks.throw(reason instanceof Error ? reason : new Error(String(reason))).catch(() => {});
      },
    },
    { highWaterMark: 0 },
  );
}

/** The same archive as an async iterable of chunks (handy for node:stream consumers). */
export async function* tarChunks(
  entries: AsyncIterable<TarWriteEntry> | Iterable<TarWriteEntry>,
): AsyncGenerator<Uint8Array> {
  for await (const entry of entries) {
    yield* entryChunks(entry);
  }
  yield new Uint8Array(BLOCK * 2);
}

/** A header entry: what `tarHeaderBytes` needs (a file's body is not read). */
export type TarHeaderEntry =
  | { type: "file"; path: string; mode: number; size: number; mtime?: number }
  | { type: "symlink"; path: string; target: string; mtime?: number }
  | { type: "directory"; path: string; mode: number; mtime?: number };

/** Zero bytes that end an archive. */
export const TAR_END_BYTES = BLOCK * 2;

/**
 * The header of one entry as written to the archive: a PAX record first when the path, link
 * target or size needs one, then the ustar header. A file's content and `tarPadding(size)` zero
 * bytes follow it. For writers that lay out the archive themselves (sync/archive.ts).
 */
export function tarHeaderBytes(entry: TarHeaderEntry): Uint8Array {
  const mtime = Math.max(0, Math.floor(entry.mtime ?? 0));
  const path = entry.type === "directory" && !entry.path.endsWith("/") ? `${entry.path}/` : entry.path;
  const linkpath = entry.type === "symlink" ? entry.target : "";
  const size = entry.type === "file" ? entry.size : 0;
  if (!Number.isSafeInteger(size) || size < 0) throw new TypeError(`invalid size for ${entry.path}`);
  const mode = entry.type === "symlink" ? 0o777 : entry.mode & 0o7777;
  const typeflag = entry.type === "file" ? "0" : entry.type === "symlink" ? "2" : "5";
  const main = header({
    name: asciiFallback(path, 100),
    typeflag,
    mode,
    size: size > MAX_OCTAL_SIZE ? 0 : size,
    mtime,
    linkname: asciiFallback(linkpath, 100),
  });

  const pax: [string, string][] = [];
  if (needsPax(path, 100)) pax.push(["path", path]);
  if (needsPax(linkpath, 100)) pax.push(["linkpath", linkpath]);
  if (size > MAX_OCTAL_SIZE) pax.push(["size", String(size)]);
  if (pax.length === 0) return main;
  const records = encodePaxRecords(pax);
  const paxHeader = header({
    name: `PaxHeader/${asciiFallback(path.replace(/\/$/, "").split("/").pop() ?? "", 90)}`,
    typeflag: "x",
    mode: 0o644,
    size: records.length,
    mtime,
    linkname: "",
  });
  const out = new Uint8Array(BLOCK + records.length + tarPadding(records.length) + BLOCK);
  out.set(paxHeader, 0);
  out.set(records, BLOCK);
  out.set(main, out.length - BLOCK);
  return out;
}

async function* entryChunks(entry: TarWriteEntry): AsyncGenerator<Uint8Array> {
  yield tarHeaderBytes(entry);
  if (entry.type !== "file") return;
  const size = entry.size;

  let written = 0;
  for await (const chunk of iterateBody(entry.body)) {
    if (chunk.length === 0) continue;
    written += chunk.length;
    if (written > size) throw new Error(`${entry.path}: content is longer than its declared size ${size}`);
    yield chunk;
  }
  if (written !== size) {
    throw new Error(
      `${entry.path}: content is ${written} bytes, declared size ${size} (file changed while archiving?)`,
    );
  }
  const pad = tarPadding(size);
  if (pad > 0) yield new Uint8Array(pad);
}

async function* iterateBody(body: TarBody): AsyncGenerator<Uint8Array> {
  if (body instanceof Uint8Array) {
    yield body;
    return;
  }
  if (isReadableStream(body)) {
    const reader = body.getReader();
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) return;
        yield value;
      }
    } finally {
      reader.releaseLock();
    }
  }
  yield* body as AsyncIterable<Uint8Array>;
}

function isReadableStream(value: unknown): value is ReadableStream<Uint8Array> {
  return typeof (value as ReadableStream | null)?.getReader === "function";
}

function needsPax(value: string, limit: number): boolean {
  // Printable ASCII has one byte per character: no encoding needed to know the length.
  return /[^\x20-\x7e]/.test(value) || value.length > limit;
}

/** What old tools see in the plain header when PAX carries the real name: ASCII, bounded. */
function asciiFallback(value: string, limit: number): string {
  const ascii = value.replace(/[^\x20-\x7e]/g, "_");
  return ascii.length > limit ? ascii.slice(ascii.length - limit) : ascii;
}

/** Zero bytes after `size` content bytes, up to the next 512-byte boundary. */
export function tarPadding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** PAX records are `<len> <key>=<value>\n` where len counts the whole record including itself. */
function encodePaxRecords(records: [string, string][]): Uint8Array {
  const parts = records.flatMap(([key, value]) => {
    const body = encoder.encode(` ${key}=${value}\n`);
    let length = body.length + 1;
    while (String(length).length + body.length !== length) length = String(length).length + body.length;
    return [encoder.encode(String(length)), body];
  });
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

interface HeaderFields {
  name: string;
  typeflag: string;
  mode: number;
  size: number;
  mtime: number;
  linkname: string;
}

function header(fields: HeaderFields): Uint8Array {
  const block = new Uint8Array(BLOCK);
  writeString(block, 0, 100, fields.name);
  writeOctal(block, 100, 8, fields.mode);
  writeOctal(block, 108, 8, 0);
  writeOctal(block, 116, 8, 0);
  writeOctal(block, 124, 12, fields.size);
  writeOctal(block, 136, 12, fields.mtime);
  block.fill(0x20, 148, 156);
  block[156] = fields.typeflag.charCodeAt(0);
  writeString(block, 157, 100, fields.linkname);
  writeString(block, 257, 6, "ustar\0");
  writeString(block, 263, 2, "00");
  let sum = 0;
  for (const byte of block) sum += byte;
  writeString(block, 148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
  return block;
}

/** Header fields are ASCII (names go through asciiFallback): written as char codes, no encoder. */
function writeString(block: Uint8Array, offset: number, length: number, value: string): void {
  const end = Math.min(length, value.length);
  for (let i = 0; i < end; i++) {
    const code = value.charCodeAt(i);
    if (code > 0x7f) {
      block.set(encoder.encode(value).subarray(0, length), offset);
      return;
    }
    block[offset + i] = code;
  }
}

function writeOctal(block: Uint8Array, offset: number, length: number, value: number): void {
  writeString(block, offset, length, `${value.toString(8).padStart(length - 1, "0")}\0`);
}

// ---------------------------------------------------------------------------------------------
// Reader

export interface ReadTarOptions {
  /** Largest PAX/GNU long-name record accepted (default 1 MiB): metadata is held in memory. */
  maxMetaBytes?: number;
}

/**
 * Iterates the entries of a tar stream. Metadata entries (PAX, GNU long names) are applied and not
 * yielded. The archive must end with its zero block; a stream that stops early is an error.
 */
export async function* readTar(
  source: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
  options: ReadTarOptions = {},
): AsyncGenerator<TarReadEntry> {
  const maxMeta = options.maxMetaBytes ?? 1024 * 1024;
  const input = new ByteReader(source);
  const globalPax = new Map<string, string>();
  let localPax = new Map<string, string>();
  let longName: string | undefined;
  let longLink: string | undefined;
  try {
    while (true) {
      // A view: the header is parsed before anything else is read.
      const block = await input.readExactView(BLOCK);
      if (block === null) throw new TarFormatError("tar archive ended without its end-of-archive block");
      if (isZeroBlock(block)) return;
      const raw = parseHeader(block);

      if (raw.typeflag === "x" || raw.typeflag === "g" || raw.typeflag === "L" || raw.typeflag === "K") {
        if (raw.size > maxMeta)
          throw new TarFormatError(`tar metadata record of ${raw.size} bytes is too large`);
        const data = await input.readExact(raw.size);
        if (data === null && raw.size > 0)
          throw new TarFormatError("tar archive truncated in a metadata record");
        await input.skip(tarPadding(raw.size));
        const bytes = data ?? new Uint8Array(0);
        if (raw.typeflag === "x") localPax = parsePax(bytes);
        else if (raw.typeflag === "g") for (const [key, value] of parsePax(bytes)) globalPax.set(key, value);
        else if (raw.typeflag === "L") longName = decodeName(trimNul(bytes));
        else longLink = decodeName(trimNul(bytes));
        continue;
      }

      const pax = new Map([...globalPax, ...localPax]);
      let path = pax.get("path") ?? longName ?? raw.name;
      const linkpath = pax.get("linkpath") ?? longLink ?? raw.linkname;
      const size = pax.has("size") ? parsePaxNumber(pax.get("size") as string, "size") : raw.size;
      const mtime = pax.has("mtime") ? Math.floor(Number(pax.get("mtime"))) : raw.mtime;
      const uid = pax.has("uid") ? parsePaxNumber(pax.get("uid") as string, "uid") : raw.uid;
      const gid = pax.has("gid") ? parsePaxNumber(pax.get("gid") as string, "gid") : raw.gid;
      localPax = new Map();
      longName = undefined;
      longLink = undefined;

      const type = entryType(raw.typeflag, path);
      if (type === "directory") path = path.replace(/\/+$/, "");
      // Only regular files carry content; a size on anything else would desynchronise the stream.
      if (type !== "file" && size !== 0) {
        throw new TarFormatError(`tar ${type} entry ${JSON.stringify(path)} declares a size`);
      }

      const body = new EntryBody(input, size);
      yield {
        get body() {
          return body.stream;
        },
        bytes: () => body.bytes(),
        header: {
          path,
          type,
          mode: raw.mode,
          size,
          mtime: Number.isFinite(mtime) ? mtime : 0,
          linkpath,
          uid,
          gid,
        },
      };
      await body.drain();
      await input.skip(tarPadding(size));
    }
  } finally {
    await input.close();
  }
}

interface RawHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
}

function parseHeader(block: Uint8Array): RawHeader {
  const stored = parseNumber(block.subarray(148, 156), "checksum");
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : (block[i] as number);
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  if (stored !== unsigned && stored !== signed) throw new TarFormatError("tar header checksum mismatch");

  const magic = latin1(block.subarray(257, 263));
  let name = decodeName(trimNul(block.subarray(0, 100)));
  // POSIX ustar splits long names into prefix + name; GNU's own format uses those bytes for other things.
  if (magic === "ustar\0") {
    const prefix = decodeName(trimNul(block.subarray(345, 500)));
    if (prefix.length > 0) name = `${prefix}/${name}`;
  }
  const flagByte = block[156] as number;
  return {
    name,
    mode: parseNumber(block.subarray(100, 108), "mode"),
    uid: parseNumber(block.subarray(108, 116), "uid"),
    gid: parseNumber(block.subarray(116, 124), "gid"),
    size: parseNumber(block.subarray(124, 136), "size"),
    mtime: parseNumber(block.subarray(136, 148), "mtime"),
    typeflag: flagByte === 0 ? "0" : String.fromCharCode(flagByte),
    linkname: decodeName(trimNul(block.subarray(157, 257))),
  };
}

function entryType(typeflag: string, path: string): TarEntryType {
  switch (typeflag) {
    case "0":
    case "7":
      return path.endsWith("/") ? "directory" : "file";
    case "1":
      return "hardlink";
    case "2":
      return "symlink";
    case "3":
      return "character-device";
    case "4":
      return "block-device";
    case "5":
      return "directory";
    case "6":
      return "fifo";
    default:
      throw new TarFormatError(
        `unsupported tar entry type ${JSON.stringify(typeflag)} for ${JSON.stringify(path)}`,
      );
  }
}

/** Octal (space/NUL padded) or GNU base-256 for values that do not fit. */
function parseNumber(field: Uint8Array, what: string): number {
  if (((field[0] as number) & 0x80) !== 0) {
    if (((field[0] as number) & 0x40) !== 0) throw new TarFormatError(`negative ${what} in tar header`);
    let value = (field[0] as number) & 0x3f;
    for (let i = 1; i < field.length; i++) value = value * 256 + (field[i] as number);
    if (!Number.isSafeInteger(value)) throw new TarFormatError(`${what} in tar header is too large`);
    return value;
  }
  // Octal digits, optionally led by spaces and ended by NULs/spaces; parsed from the bytes directly
  // (a TextDecoder and two regexps per field were a visible share of reading 3,000 headers).
  let start = 0;
  let end = field.length;
  while (end > start && (field[end - 1] === 0 || field[end - 1] === 0x20)) end--;
  while (start < end && field[start] === 0x20) start++;
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = (field[i] as number) - 0x30;
    if (digit < 0 || digit > 7) throw new TarFormatError(`invalid ${what} field in tar header`);
    value = value * 8 + digit;
  }
  if (!Number.isSafeInteger(value)) throw new TarFormatError(`${what} in tar header is too large`);
  return value;
}

function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

function latin1(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i] as number);
  return text;
}

function parsePaxNumber(value: string, key: string): number {
  if (!/^[0-9]+$/.test(value)) throw new TarFormatError(`invalid PAX ${key} ${JSON.stringify(value)}`);
  const number = Number(value);
  if (!Number.isSafeInteger(number)) throw new TarFormatError(`PAX ${key} is too large`);
  return number;
}

function parsePax(bytes: Uint8Array): Map<string, string> {
  const records = new Map<string, string>();
  let offset = 0;
  while (offset < bytes.length) {
    if (bytes[offset] === 0) break;
    let space = offset;
    while (space < bytes.length && bytes[space] !== 0x20) space++;
    const lengthText = new TextDecoder().decode(bytes.subarray(offset, space));
    const length = /^[0-9]+$/.test(lengthText) ? Number(lengthText) : Number.NaN;
    if (!Number.isSafeInteger(length) || length <= space - offset || offset + length > bytes.length) {
      throw new TarFormatError("malformed PAX record");
    }
    const record = bytes.subarray(space + 1, offset + length);
    if (record[record.length - 1] !== 0x0a) throw new TarFormatError("malformed PAX record (no newline)");
    const text = decodeName(record.subarray(0, record.length - 1));
    const equals = text.indexOf("=");
    if (equals <= 0) throw new TarFormatError("malformed PAX record (no key)");
    const key = text.slice(0, equals);
    const value = text.slice(equals + 1);
    // An empty value deletes the keyword (POSIX); treat as absent.
    if (value === "") records.delete(key);
    else records.set(key, value);
    offset += length;
  }
  return records;
}

function trimNul(bytes: Uint8Array): Uint8Array {
  const end = bytes.indexOf(0);
  return end === -1 ? bytes : bytes.subarray(0, end);
}

const nameDecoder = new TextDecoder("utf-8", { fatal: true });

/** Names must be UTF-8: two different byte names must never decode to the same string. */
function decodeName(bytes: Uint8Array): string {
  try {
    return nameDecoder.decode(bytes);
  } catch {
    throw new TarFormatError("tar entry name is not valid UTF-8");
  }
}

/** Pull-based byte source over chunks, with exact reads. One consumer at a time. */
class ByteReader {
  private readonly iterator: AsyncIterator<Uint8Array>;
  private buffered: Uint8Array = new Uint8Array(0);
  private ended = false;

  constructor(source: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>) {
    this.iterator = isReadableStream(source) ? readerIterator(source) : source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    while (this.buffered.length === 0) {
      if (this.ended) return false;
      const next = await this.iterator.next();
      if (next.done) {
        this.ended = true;
        return false;
      }
      this.buffered = next.value;
    }
    return true;
  }

  /** Up to `max` bytes (at least 1), or null at the end of the stream. */
  async readSome(max: number): Promise<Uint8Array | null> {
    if (!(await this.fill())) return null;
    const take = Math.min(max, this.buffered.length);
    const out = this.buffered.subarray(0, take);
    this.buffered = this.buffered.subarray(take);
    return out;
  }

  /** Exactly `n` bytes; null when the stream ends before the first byte, an error when it ends midway. */
  async readExact(n: number): Promise<Uint8Array | null> {
    const bytes = await this.readExactView(n);
    // A copy when it is a view: headers and metadata are kept while the reader moves on.
    return bytes !== null && bytes.byteLength < bytes.buffer.byteLength ? bytes.slice() : bytes;
  }

  /**
   * Like readExact, but a view into the source chunk when the bytes lie within one (no copy): for
   * callers that are done with the bytes before they ask for more.
   */
  async readExactView(n: number): Promise<Uint8Array | null> {
    if (n === 0) return new Uint8Array(0);
    const first = await this.readSome(n);
    if (first === null) return null;
    if (first.length === n) return first;
    const out = new Uint8Array(n);
    out.set(first, 0);
    let offset = first.length;
    while (offset < n) {
      const chunk = await this.readSome(n - offset);
      if (chunk === null) throw new TarFormatError("tar archive truncated");
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }

  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      const chunk = await this.readSome(left);
      if (chunk === null) throw new TarFormatError("tar archive truncated");
      left -= chunk.length;
    }
  }

  async close(): Promise<void> {
    if (!this.ended) await this.iterator.return?.();
  }
}

async function* readerIterator(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return;
      if (value.length > 0) yield value;
    }
  } finally {
    // Abandoning the archive midway (an error, a refused entry) must not leave the source half-read.
    await reader.cancel().catch(() => {});
  }
}

/** One entry's content as a stream over the shared reader; drain() skips what the consumer left. */
class EntryBody {
  private remaining: number;
  private pending: Promise<void> = Promise.resolve();
  private finished = false;
  private created: ReadableStream<Uint8Array> | undefined;

  constructor(
    private readonly input: ByteReader,
    size: number,
  ) {
    this.remaining = size;
  }

  /** Made on first use: a sync apply reads 3,000 small entries with bytes() and never needs it. */
  get stream(): ReadableStream<Uint8Array> {
    this.created ??= new ReadableStream<Uint8Array>(
      {
        pull: (controller) => {
          const step = this.pending.then(async () => {
            if (this.finished || this.remaining === 0) {
              controller.close();
              return;
            }
            const chunk = await this.input.readSome(Math.min(this.remaining, 256 * 1024));
            if (chunk === null) throw new TarFormatError("tar archive truncated inside an entry");
            this.remaining -= chunk.length;
            // Copy: the consumer may keep the chunk while the reader moves on.
            controller.enqueue(chunk.slice());
            if (this.remaining === 0) controller.close();
          });
          this.pending = step.catch(() => {});
          return step;
        },
        cancel: () => {
          // Whatever is left is skipped by drain().
        },
      },
      { highWaterMark: 0 },
    );
    return this.created;
  }

  /** The whole (unread) content at once: see TarReadEntry.bytes. */
  async bytes(): Promise<Uint8Array> {
    await this.pending;
    if (this.finished) throw new TarFormatError("tar entry read after the archive moved on");
    const size = this.remaining;
    const read = this.input.readExactView(size).then((bytes) => {
      if (bytes === null && size > 0) throw new TarFormatError("tar archive truncated inside an entry");
      this.remaining = 0;
      return bytes ?? new Uint8Array(0);
    });
    this.pending = read.then(
      () => {},
      () => {},
    );
    return read;
  }

  async drain(): Promise<void> {
    await this.pending;
    this.finished = true;
    await this.input.skip(this.remaining);
    this.remaining = 0;
  }
}

/** Reads a whole (small) body, refusing more than `max` bytes. */
export async function readBody(body: ReadableStream<Uint8Array>, max: number): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  const reader = body.getReader();
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > max) {
      await reader.cancel();
      throw new TarFormatError(`entry is larger than ${max} bytes`);
    }
    parts.push(value);
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
