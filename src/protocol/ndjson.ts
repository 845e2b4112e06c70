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
 * Splits a byte stream into parsed JSON values, one per line. Blank lines are ignored; a final line
 * without a newline is still parsed (a stream cut mid-line then fails to parse, which is the point).
 */
export async function* decodeNdjson(
  source: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
  options: DecodeOptions = {},
): AsyncGenerator<unknown> {
  const max = options.maxLineBytes ?? MAX_EVENT_LINE_BYTES;
  const decoder = new TextDecoder("utf-8", { fatal: true });
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  for await (const chunk of iterate(source)) {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(0x0a, start);
      const end = newline === -1 ? chunk.length : newline;
      const piece = chunk.subarray(start, end);
      if (pendingBytes + piece.length > max) {
        throw new NdjsonError(`NDJSON line longer than ${max} bytes`);
      }
      if (newline === -1) {
        // Copy: the source may reuse its buffer once we ask for the next chunk.
        pending.push(piece.slice());
        pendingBytes += piece.length;
        break;
      }
      const line = pending.length === 0 ? piece : concat([...pending, piece], pendingBytes + piece.length);
      pending = [];
      pendingBytes = 0;
      start = newline + 1;
      const value = parseLine(line, decoder);
      if (value !== undefined) yield value;
    }
  }
  if (pendingBytes > 0) {
    const value = parseLine(concat(pending, pendingBytes), decoder);
    if (value !== undefined) yield value;
  }
}

/** decodeNdjson, with every value checked to be a well-formed ExecEvent. */
export async function* decodeExecEvents(
  source: ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
  options: DecodeOptions = {},
): AsyncGenerator<ExecEvent> {
  for await (const value of decodeNdjson(source, options)) yield parseExecEvent(value);
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

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

async function* iterate(
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
    case "stderr":
      if (typeof event.data !== "string") throw bad("data missing");
      fromBase64(event.data);
      return { seq, type: event.type, data: event.data };
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
