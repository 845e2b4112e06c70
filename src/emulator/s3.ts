/**
 * A path-style S3 just big enough for image artifacts: CreateBucket, PutObject, HeadObject,
 * GetObject and DeleteObject into `<state>/s3/<bucket>/<key>`. The S3 client streams uploads as
 * `aws-chunked` bodies (hex-sized chunks, optionally signed, then trailing checksums); those are
 * decoded on the fly and a trailing CRC32/SHA-1/SHA-256 is verified like S3 does (BadDigest).
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { crc32 } from "node:zlib";

export interface S3Result {
  response: Response;
  op: string;
  bytesIn: number;
}

/** Host path of an object, or undefined for keys a filesystem cannot hold (`..`, empty segments). */
export function objectPath(root: string, bucket: string, key: string): string | undefined {
  const segments = key.split("/");
  if (segments.some((segment) => segment === "" || segment === "." || segment === "..")) return undefined;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) return undefined;
  return join(root, bucket, ...segments);
}

function xmlError(status: number, code: string, message: string, id: string, extra = ""): Response {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message>${extra}<RequestId>${id}</RequestId></Error>`;
  return new Response(body, {
    status,
    headers: { "content-type": "application/xml", "x-amz-request-id": id },
  });
}

const etags = new Map<string, string>();

async function etagOf(path: string): Promise<string> {
  const known = etags.get(path);
  if (known) return known;
  const hash = createHash("md5");
  for await (const chunk of Bun.file(path).stream()) hash.update(chunk);
  const etag = `"${hash.digest("hex")}"`;
  etags.set(path, etag);
  return etag;
}

export async function handleS3(req: Request, url: URL, root: string): Promise<S3Result> {
  const id = crypto.randomUUID().replace(/-/g, "").slice(0, 16).toUpperCase();
  const parts = url.pathname.split("/").slice(1).map(decodeURIComponent);
  const bucket = parts[0] ?? "";
  const key = parts.slice(1).join("/");
  const method = req.method;
  if (!bucket)
    return {
      op: "ListBuckets",
      bytesIn: 0,
      response: xmlError(501, "NotImplemented", "Not implemented by the emulator", id),
    };
  if (!key) {
    if (method === "PUT") {
      mkdirSync(join(root, bucket), { recursive: true });
      return {
        op: "CreateBucket",
        bytesIn: 0,
        response: new Response(null, { status: 200, headers: { location: `/${bucket}` } }),
      };
    }
    if (method === "HEAD") {
      const exists = existsSync(join(root, bucket));
      return { op: "HeadBucket", bytesIn: 0, response: new Response(null, { status: exists ? 200 : 404 }) };
    }
    return {
      op: "Bucket",
      bytesIn: 0,
      response: xmlError(501, "NotImplemented", "Only object operations are emulated", id),
    };
  }
  const path = objectPath(root, bucket, key);
  if (!path) {
    return {
      op: "Object",
      bytesIn: 0,
      response: xmlError(400, "InvalidArgument", "The emulator cannot store this bucket or key", id),
    };
  }
  if (method === "PUT") return putObject(req, path, id);
  const exists = existsSync(path) && statSync(path).isFile();
  if (method === "DELETE") {
    rmSync(path, { force: true });
    etags.delete(path);
    return { op: "DeleteObject", bytesIn: 0, response: new Response(null, { status: 204 }) };
  }
  const op = method === "HEAD" ? "HeadObject" : "GetObject";
  if (method !== "HEAD" && method !== "GET") {
    return {
      op: "Object",
      bytesIn: 0,
      response: xmlError(405, "MethodNotAllowed", "Method not allowed", id),
    };
  }
  if (!exists) {
    if (method === "HEAD")
      return {
        op,
        bytesIn: 0,
        response: new Response(null, { status: 404, headers: { "x-amz-request-id": id } }),
      };
    const noBucket = !existsSync(join(root, bucket));
    return {
      op,
      bytesIn: 0,
      response: noBucket
        ? xmlError(
            404,
            "NoSuchBucket",
            "The specified bucket does not exist",
            id,
            `<BucketName>${bucket}</BucketName>`,
          )
        : xmlError(404, "NoSuchKey", "The specified key does not exist.", id, `<Key>${escapeXml(key)}</Key>`),
    };
  }
  const stat = statSync(path);
  const headers = {
    "content-type": "application/octet-stream",
    "content-length": String(stat.size),
    etag: await etagOf(path),
    "last-modified": stat.mtime.toUTCString(),
    "x-amz-request-id": id,
  };
  const body = method === "HEAD" ? null : Bun.file(path).stream();
  return { op, bytesIn: 0, response: new Response(body, { status: 200, headers }) };
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

async function putObject(req: Request, path: string, id: string): Promise<S3Result> {
  const chunked =
    (req.headers.get("content-encoding") ?? "").includes("aws-chunked") ||
    (req.headers.get("x-amz-content-sha256") ?? "").startsWith("STREAMING-");
  mkdirSync(dirname(path), { recursive: true });
  const temp = `${path}.upload-${id}`;
  const sink = Bun.file(temp).writer();
  const md5 = createHash("md5");
  const sums = new Checksums();
  let bytesIn = 0;
  const decoder = chunked ? new AwsChunkedDecoder() : undefined;
  try {
    if (req.body) {
      for await (const chunk of req.body) {
        bytesIn += chunk.length;
        const pieces = decoder ? decoder.feed(chunk) : [chunk];
        for (const piece of pieces) {
          md5.update(piece);
          sums.update(piece);
          sink.write(piece);
        }
      }
    }
    await sink.end();
    const trailers = decoder ? decoder.finish() : {};
    const claimed = { ...headerChecksums(req.headers), ...trailers };
    const mismatch = sums.mismatch(claimed);
    if (mismatch) {
      rmSync(temp, { force: true });
      return {
        op: "PutObject",
        bytesIn,
        response: xmlError(
          400,
          "BadDigest",
          `The ${mismatch} you specified did not match the calculated checksum.`,
          id,
        ),
      };
    }
    renameSync(temp, path);
    const etag = `"${md5.digest("hex")}"`;
    etags.set(path, etag);
    const headers: Record<string, string> = { etag, "x-amz-request-id": id };
    for (const [name, value] of Object.entries(claimed)) headers[name] = value;
    return { op: "PutObject", bytesIn, response: new Response(null, { status: 200, headers }) };
  } catch (error) {
    rmSync(temp, { force: true });
    const message = error instanceof Error ? error.message : String(error);
    return { op: "PutObject", bytesIn, response: xmlError(400, "IncompleteBody", message, id) };
  }
}

function headerChecksums(headers: Headers): Record<string, string> {
  const found: Record<string, string> = {};
  for (const name of [
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
  ]) {
    const value = headers.get(name);
    if (value) found[name] = value;
  }
  return found;
}

/** Running checksums S3 can verify; CRC32C and CRC64 are stored as claimed (no native implementation). */
class Checksums {
  private crc = 0;
  private readonly sha1 = createHash("sha1");
  private readonly sha256 = createHash("sha256");

  update(bytes: Uint8Array): void {
    this.crc = crc32(bytes, this.crc);
    this.sha1.update(bytes);
    this.sha256.update(bytes);
  }

  /** The name of the first claimed checksum that does not match, if any. */
  mismatch(claimed: Record<string, string>): string | undefined {
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(this.crc >>> 0);
    const actual: Record<string, string> = {
      "x-amz-checksum-crc32": crc.toString("base64"),
      "x-amz-checksum-sha1": this.sha1.digest("base64"),
      "x-amz-checksum-sha256": this.sha256.digest("base64"),
    };
    for (const [name, value] of Object.entries(claimed)) {
      const expected = actual[name];
      if (expected !== undefined && expected !== value)
        return name.replace("x-amz-checksum-", "").toUpperCase();
    }
    return undefined;
  }
}

/**
 * Incremental `aws-chunked` decoder: `<hex-size>[;chunk-signature=…]\r\n<bytes>\r\n` … `0\r\n`,
 * then trailer lines `name:value\r\n` and a final `\r\n` (the final CRLF may be missing).
 */
export class AwsChunkedDecoder {
  private buffer: Uint8Array<ArrayBufferLike> = new Uint8Array(0);
  private remaining = -1;
  private phase: "size" | "data" | "data-crlf" | "trailers" | "done" = "size";
  private readonly trailers: Record<string, string> = {};

  feed(chunk: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    this.buffer = this.buffer.length ? concat(this.buffer, chunk) : chunk;
    for (;;) {
      if (this.phase === "data") {
        if (this.buffer.length === 0) break;
        const take = Math.min(this.remaining, this.buffer.length);
        out.push(this.buffer.subarray(0, take));
        this.buffer = this.buffer.subarray(take);
        this.remaining -= take;
        if (this.remaining === 0) this.phase = "data-crlf";
        continue;
      }
      const line = this.line();
      if (line === undefined) break;
      if (this.phase === "data-crlf") {
        if (line !== "") throw new Error("malformed aws-chunked body (missing CRLF after a chunk)");
        this.phase = "size";
      } else if (this.phase === "size") {
        const size = Number.parseInt(line.split(";")[0] ?? "", 16);
        if (!Number.isInteger(size) || size < 0)
          throw new Error("malformed aws-chunked body (bad chunk size)");
        if (size === 0) this.phase = "trailers";
        else {
          this.remaining = size;
          this.phase = "data";
        }
      } else if (this.phase === "trailers") {
        if (line === "") this.phase = "done";
        else {
          const colon = line.indexOf(":");
          if (colon > 0)
            this.trailers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
        }
      } else if (line !== "") throw new Error("malformed aws-chunked body (data after the end)");
    }
    return out;
  }

  finish(): Record<string, string> {
    if (this.phase === "trailers" && this.buffer.length > 0) this.feed(new TextEncoder().encode("\r\n"));
    if (this.phase !== "done" && this.phase !== "trailers") throw new Error("incomplete aws-chunked body");
    const checksums: Record<string, string> = {};
    for (const [name, value] of Object.entries(this.trailers)) {
      if (name.startsWith("x-amz-checksum-")) checksums[name] = value;
    }
    return checksums;
  }

  private line(): string | undefined {
    for (let i = 0; i + 1 < this.buffer.length; i++) {
      if (this.buffer[i] === 13 && this.buffer[i + 1] === 10) {
        const text = new TextDecoder().decode(this.buffer.subarray(0, i));
        this.buffer = this.buffer.subarray(i + 2);
        return text;
      }
    }
    if (this.buffer.length > 64 * 1024) throw new Error("malformed aws-chunked body (line too long)");
    return undefined;
  }
}

function concat(a: Uint8Array<ArrayBufferLike>, b: Uint8Array<ArrayBufferLike>): Uint8Array<ArrayBufferLike> {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
