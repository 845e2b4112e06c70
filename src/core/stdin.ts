import { fstatSync } from "node:fs";

/**
 * Whether `crabbox run` hands its stdin to the remote command. Only a FIFO (`echo x | crabbox run
 * -- cat`) or a regular file (`crabbox run -- sh < script.sh`) is attached by default: a terminal,
 * /dev/null, or the socket an agent's harness leaves open forever would either hang the run waiting
 * for an EOF that never comes or feed it nothing useful. `--stdin` / `--no-stdin` decide otherwise.
 */

/** Whether fd 0 is a FIFO or a regular file. */
export function stdinIsData(fd = 0): boolean {
  try {
    const stats = fstatSync(fd);
    return stats.isFIFO() || stats.isFile();
  } catch {
    // No fd 0 at all (closed by the parent): nothing to attach.
    return false;
  }
}

/** `flag` is `--stdin` (true), `--no-stdin` (false) or neither (undefined). */
export function attachStdin(flag: boolean | undefined, isData: () => boolean = stdinIsData): boolean {
  return flag ?? isData();
}

/** The process's stdin as a pull-driven stream: nothing is read before the runner asks for it. */
export function localStdin(input: NodeJS.ReadableStream = process.stdin): ReadableStream<Uint8Array> {
  // Created on the first pull: a stream that is never read (the exec was refused) touches nothing.
  let iterator: AsyncIterator<string | Uint8Array> | undefined;
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        iterator ??= input[Symbol.asyncIterator]() as AsyncIterator<string | Uint8Array>;
        const { value, done } = await iterator.next();
        if (done) {
          controller.close();
          return;
        }
        if (typeof value === "string") controller.enqueue(encoder.encode(value));
        else controller.enqueue(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
      },
      async cancel() {
        await iterator?.return?.();
        (input as { destroy?: () => void }).destroy?.();
      },
    },
    { highWaterMark: 0 },
  );
}
