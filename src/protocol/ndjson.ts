/**
 * NDJSON for the exec event stream: one JSON object per `\n`-terminated line, each line at most
 * MAX_EVENT_LINE_BYTES. The decoder enforces the limit while buffering, so a runaway line is an
 * error after 1 MiB rather than unbounded memory, and a malformed line is an error, never skipped.
 */
import { Buffer } from "node:buffer";
import { type ExecEvent, MAX_EVENT_LINE_BYTES } from "./types.ts";

const encoder = new TextEncoder();

/** A malformed NDJSON stream or event. */
export class NdjsonError extends Error {
  override readonly name = "NdjsonError";
}

/** One event as its wire line (with the trailing newline). */
export function encodeEvent(event: ExecEvent): string {
  return `${JSON.stringify(event)}\n`;
}

export function encodeEventBytes(event: ExecEvent): Uint8Array {
  return encoder.encode(encodeEvent(event));
}

/** Standard padded base64 of raw bytes (output chunks travel this way). */
export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

/** Decodes standard base64 and refuses anything that is not canonical base64. */
export function fromBase64(text: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
    throw new NdjsonError("invalid base64 data");
  }
  const buffer = Buffer.from(text, "base64");
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

export interface DecodeOptions {
  maxLineBytes?: number;
}

/**
 * Splits a byte stream into lines (without their newline), enforcing the limit while buffering. A
 * yielded line is a view that is only valid until the next one is asked for: a line inside one
 * chunk is that chunk's bytes, a line spanning chunks is assembled in one reused buffer. Copying
 * nothing else matters on the exec path, where every line is ~87 KB of base64 (one 64 KiB chunk).
 */
async function* splitLines(
  source: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
  max: number,
): AsyncGenerator<Uint8Array> {
  let pending = new Uint8Array(0);
  let filled = 0;
  const keep = (piece: Uint8Array) => {
    if (filled + piece.length > pending.length) {
      const grown = new Uint8Array(Math.min(max, Math.max(64 * 1024, (filled + piece.length) * 2)));
      grown.set(pending.subarray(0, filled));
      pending = grown;
    }
    // Copy: the source may reuse its buffer once we ask for the next chunk.
    pending.set(piece, filled);
    filled += piece.length;
  };
  for await (const chunk of iterate(source)) {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(0x0a, start);
      const end = newline === -1 ? chunk.length : newline;
      const piece = chunk.subarray(start, end);
      if (filled + piece.length > max) {
        throw new NdjsonError(`NDJSON line longer than ${max} bytes`);
      }
      if (newline === -1) {
        keep(piece);
        break;
      }
      start = newline + 1;
      if (filled === 0) {
        yield piece;
      } else {
        keep(piece);
        const line = pending.subarray(0, filled);
        filled = 0;
        yield line;
      }
    }
  }
  if (filled > 0) yield pending.subarray(0, filled);
}

/**
 * Splits a byte stream into parsed JSON values, one per line. Blank lines are ignored; a final line
 * without a newline is still parsed (a stream cut mid-line then fails to parse, which is the point).
 */
export async function* decodeNdjson(
  source: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
  options: DecodeOptions = {},
): AsyncGenerator<unknown> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  for await (const line of splitLines(source, options.maxLineBytes ?? MAX_EVENT_LINE_BYTES)) {
    const value = parseLine(line, decoder);
    if (value !== undefined) yield value;
  }
}

/**
 * decodeNdjson, with every value checked to be a well-formed ExecEvent. Output lines in the
 * runner's own shape take a fast path that decodes their base64 straight from the line's bytes
 * (no UTF-8 decode, no JSON.parse of an 87 KB string, no base64 string); anything else — other
 * field orders, escapes, extra fields — goes through JSON.parse and the same checks.
 */
export async function* decodeExecEvents(
  source: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
  options: DecodeOptions = {},
): AsyncGenerator<ExecEvent> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  for await (const line of splitLines(source, options.maxLineBytes ?? MAX_EVENT_LINE_BYTES)) {
    const fast = outputLine(line);
    if (fast) {
      yield fast;
      continue;
    }
    const value = parseLine(line, decoder);
    if (value !== undefined) yield parseExecEvent(value);
  }
}

/**
 * Raw bytes of output events, so a chunk is decoded once however it was parsed: one array, or the
 * pieces a frame arrived in (see frames.ts), joined only if someone asks for one array.
 */
const outputs = new WeakMap<object, Uint8Array | readonly Uint8Array[]>();

type OutputEvent = Extract<ExecEvent, { type: "stdout" | "stderr" }>;

/** The raw bytes of an output event (decoded once, when the event was parsed). */
export function outputBytes(event: OutputEvent): Uint8Array {
  const held = outputs.get(event);
  if (held === undefined) return fromBase64(event.data);
  if (held instanceof Uint8Array) return held;
  const joined: Uint8Array = Buffer.concat(held);
  outputs.set(event, joined);
  return joined;
}

/**
 * The raw bytes of an output event in the pieces it arrived in, for a writer that can take them one
 * by one: a frame split across network chunks is never copied into one array.
 */
export function outputPieces(event: OutputEvent): readonly Uint8Array[] {
  const held = outputs.get(event);
  if (held === undefined) return [fromBase64(event.data)];
  return held instanceof Uint8Array ? [held] : held;
}

/** An output event whose `data` (base64) is only built if someone reads it. */
export function outputEvent(
  seq: number,
  type: OutputEvent["type"],
  bytes: Uint8Array | readonly Uint8Array[],
): OutputEvent {
  let data: string | undefined;
  const event = { seq, type } as OutputEvent;
  Object.defineProperty(event, "data", {
    enumerable: true,
    configurable: true,
    get: () => {
      data ??= toBase64(outputBytes(event));
      return data;
    },
  });
  outputs.set(event, bytes);
  return event;
}

const ascii = (text: string) => Uint8Array.from(text, (char) => char.charCodeAt(0));
const SEQ_PREFIX = ascii('{"seq":');
const STDOUT_FIELDS = ascii(',"type":"stdout","data":"');
const STDERR_FIELDS = ascii(',"type":"stderr","data":"');

function startsWith(line: Uint8Array, at: number, expected: Uint8Array): boolean {
  if (line.length < at + expected.length) return false;
  for (let i = 0; i < expected.length; i++) if (line[at + i] !== expected[i]) return false;
  return true;
}

/**
 * `{"seq":N,"type":"stdout"|"stderr","data":"<base64>"}` exactly, as the runner writes it, decoded
 * without building strings; undefined for any other line (which then takes the JSON path).
 */
function outputLine(line: Uint8Array): OutputEvent | undefined {
  if (!startsWith(line, 0, SEQ_PREFIX)) return undefined;
  let at = SEQ_PREFIX.length;
  let seq = 0;
  const digits = at;
  while (at < line.length && at - digits < 15) {
    const digit = (line[at] as number) - 0x30;
    if (digit < 0 || digit > 9) break;
    seq = seq * 10 + digit;
    at++;
  }
  // JSON has no leading zeros; seq starts at 1.
  if (at === digits || line[digits] === 0x30) return undefined;
  const type = startsWith(line, at, STDOUT_FIELDS)
    ? "stdout"
    : startsWith(line, at, STDERR_FIELDS)
      ? "stderr"
      : undefined;
  if (!type) return undefined;
  const start = at + STDOUT_FIELDS.length;
  const end = line.length - 2;
  if (end < start || line[end] !== 0x22 || line[end + 1] !== 0x7d) return undefined;
  const bytes = base64Bytes(line, start, end);
  return bytes ? outputEvent(seq, type, bytes) : undefined;
}

const BAD = 1 << 24;
const DECODE = [18, 12, 6, 0].map((shift) => {
  const table = new Int32Array(256).fill(BAD);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (let i = 0; i < alphabet.length; i++) table[alphabet.charCodeAt(i)] = i << shift;
  return table;
}) as [Int32Array, Int32Array, Int32Array, Int32Array];

/**
 * Standard padded base64 held as ASCII bytes in `source[start, end)`, decoded; undefined if it is
 * not canonical base64 (any other byte, a bad length, misplaced padding). Validity is accumulated
 * in one bit rather than tested per character, which keeps the loop branch-free.
 */
function base64Bytes(source: Uint8Array, start: number, end: number): Uint8Array | undefined {
  const length = end - start;
  if (length % 4 !== 0) return undefined;
  const padding = length === 0 ? 0 : source[end - 1] !== 0x3d ? 0 : source[end - 2] === 0x3d ? 2 : 1;
  // Every byte is written below, so no zero-filling (see encodeFrame in frames.ts).
  const out: Uint8Array = Buffer.allocUnsafe((length / 4) * 3 - padding);
  const [a, b, c, d] = DECODE;
  const full = padding === 0 ? end : end - 4;
  let invalid = 0;
  let o = 0;
  for (let i = start; i < full; i += 4) {
    const value =
      (a[source[i] as number] as number) |
      (b[source[i + 1] as number] as number) |
      (c[source[i + 2] as number] as number) |
      (d[source[i + 3] as number] as number);
    invalid |= value;
    out[o] = value >>> 16;
    out[o + 1] = value >>> 8;
    out[o + 2] = value;
    o += 3;
  }
  if (padding > 0) {
    const value =
      (a[source[full] as number] as number) |
      (b[source[full + 1] as number] as number) |
      (padding === 1 ? (c[source[full + 2] as number] as number) : 0);
    invalid |= value;
    out[o] = value >>> 16;
    if (padding === 1) out[o + 1] = value >>> 8;
  }
  return invalid & BAD ? undefined : out;
}

function parseLine(line: Uint8Array, decoder: TextDecoder): unknown {
  let text: string;
  try {
    text = decoder.decode(line);
  } catch {
    throw new NdjsonError("NDJSON line is not valid UTF-8");
  }
  if (text.trim() === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new NdjsonError(`malformed NDJSON line: ${text.length > 120 ? `${text.slice(0, 120)}…` : text}`);
  }
}

/** The chunks of a web stream or an async iterable (node streams), cancelling the stream if left early. */
export async function* iterate(
  source: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
): AsyncGenerator<Uint8Array> {
  if (typeof (source as ReadableStream).getReader !== "function") {
    yield* source as AsyncIterable<Uint8Array>;
    return;
  }
  const reader = (source as ReadableStream<Uint8Array>).getReader();
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

const REASONS = new Set(["exited", "signaled", "timeout", "canceled"]);

/** Validates one decoded value as an ExecEvent; unknown extra fields are allowed (forward compatible). */
export function parseExecEvent(value: unknown): ExecEvent {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new NdjsonError("exec event is not an object");
  }
  const event = value as Record<string, unknown>;
  const seq = event.seq;
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1) {
    throw new NdjsonError("exec event has no valid seq");
  }
  const bad = (what: string) => new NdjsonError(`${String(event.type)} event #${seq}: ${what}`);
  switch (event.type) {
    case "started":
      if (typeof event.execId !== "string") throw bad("execId missing");
      if (typeof event.pid !== "number") throw bad("pid missing");
      if (typeof event.startedAtMs !== "number") throw bad("startedAtMs missing");
      return { seq, type: "started", execId: event.execId, pid: event.pid, startedAtMs: event.startedAtMs };
    case "stdout":
    case "stderr": {
      if (typeof event.data !== "string") throw bad("data missing");
      const parsed: OutputEvent = { seq, type: event.type, data: event.data };
      outputs.set(parsed, fromBase64(event.data));
      return parsed;
    }
    case "heartbeat":
      return { seq, type: "heartbeat" };
    case "exit": {
      const exitCode = event.exitCode;
      const signal = event.signal;
      if (exitCode !== null && (typeof exitCode !== "number" || !Number.isInteger(exitCode))) {
        throw bad("exitCode must be an integer or null");
      }
      if (signal !== null && typeof signal !== "string") throw bad("signal must be a string or null");
      if (typeof event.reason !== "string" || !REASONS.has(event.reason)) throw bad("unknown reason");
      if (typeof event.durationMs !== "number") throw bad("durationMs missing");
      return {
        seq,
        type: "exit",
        exitCode,
        signal,
        reason: event.reason as "exited" | "signaled" | "timeout" | "canceled",
        durationMs: event.durationMs,
      };
    }
    default:
      throw new NdjsonError(`unknown exec event type ${JSON.stringify(event.type)}`);
  }
}
