/**
 * The emulator's two logs. Human lines (transitions, requests) go to stderr. `--log-json FILE` gets
 * one JSON object per request — streamed ones when they finish — and one per lifecycle hook call;
 * other engineers' tests count calls and bytes from it, so every request is recorded.
 */
import { appendFileSync } from "node:fs";

export interface RequestRecord {
  /** ISO time the request arrived. */
  ts: string;
  plane: "control" | "data" | "s3" | "hook" | "emulator";
  /** Control plane: the API operation; S3: the S3 operation; hook: the hook name. */
  op?: string;
  method: string;
  path: string;
  microvmId?: string;
  status: number;
  bytesIn: number;
  bytesOut: number;
  ms: number;
  /** Set when a stream ended abnormally (client gone, runner died, injected cut). */
  error?: string;
}

export interface EmulatorLog {
  request(record: RequestRecord): void;
  note(line: string): void;
}

export function createLog(jsonFile: string | undefined): EmulatorLog {
  return {
    request(record) {
      // Sync append: a test that reads the file right after its response must find the record.
      if (jsonFile) appendFileSync(jsonFile, `${JSON.stringify(record)}\n`);
      const who = record.microvmId ? ` ${record.microvmId.slice(0, 16)}` : "";
      const what = record.op ?? record.method;
      const tail = record.error ? ` (${record.error})` : "";
      process.stderr.write(
        `[${record.plane}]${who} ${what} ${record.path} -> ${record.status} ${record.ms}ms${tail}\n`,
      );
    },
    note(line) {
      process.stderr.write(`${line}\n`);
    },
  };
}
