import { formatDuration } from "../../core/duration.ts";
import { plainOutput } from "../../core/output.ts";
import type { Reporter } from "../provider.ts";

/**
 * A one-line spinner for the slow phases (provisioning, upload) on an interactive terminal. It is
 * drawn through the reporter's stderr channel and erased before any other line is written, so the
 * scrollback holds exactly the plain lines a non-TTY run prints — no residue. Off when stderr is not
 * a TTY, with CI set, or with NO_COLOR (plainOutput), where only the plain lines appear.
 */

export interface Progress {
  /** Reporter whose every line first erases the spinner. */
  readonly report: Reporter;
  /** Shows (or replaces) the spinner text; the elapsed time since this phase began is appended. */
  phase(text: string): void;
  /** Updates the text without restarting the phase clock. */
  update(text: string): void;
  /** Erases the spinner and stops drawing. */
  stop(): void;
}

const FRAMES = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const TICK_MS = 100;
const encoder = new TextEncoder();

export function createProgress(
  base: Reporter,
  enabled: boolean = !plainOutput,
  columns: () => number = () => process.stderr.columns || 80,
): Progress {
  let text: string | undefined;
  let since = 0;
  let frame = 0;
  let drawn = false;
  let timer: ReturnType<typeof setInterval> | undefined;

  const erase = () => {
    if (!drawn) return;
    base.stderr(encoder.encode("\r\x1b[2K"));
    drawn = false;
  };
  const draw = () => {
    if (text === undefined) return;
    frame = (frame + 1) % FRAMES.length;
    const elapsed = formatDuration(Math.floor((performance.now() - since) / 100) * 100);
    // A line that wraps could not be erased with one \r: cut it to the terminal's width.
    const width = Math.max(20, columns() - 1);
    const line = `${FRAMES[frame]} ${text} ${elapsed}`;
    const shown = line.length > width ? `${line.slice(0, width - 1)}…` : line;
    base.stderr(encoder.encode(`\r\x1b[2K${shown}`));
    drawn = true;
  };
  const around =
    <A extends unknown[]>(fn: (...args: A) => void) =>
    (...args: A) => {
      erase();
      fn(...args);
      draw();
    };

  const report: Reporter = enabled
    ? {
        info: around(base.info),
        warn: around(base.warn),
        debug: around(base.debug),
        stdout: around(base.stdout),
        stderr: around(base.stderr),
      }
    : base;

  return {
    report,
    phase(next) {
      if (!enabled) return;
      since = performance.now();
      this.update(next);
    },
    update(next) {
      if (!enabled) return;
      text = next;
      if (timer === undefined) {
        timer = setInterval(draw, TICK_MS);
        // The spinner must never keep a finished CLI alive.
        (timer as { unref?: () => void }).unref?.();
      }
      erase();
      draw();
    },
    stop() {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      text = undefined;
      erase();
    },
  };
}
