/**
 * `--timing-json`: one line on stderr in upstream's field order (§2.3.6), so tools that parse
 * upstream's line keep working. Optional fields are omitted when empty, false or zero; crabbox
 * adds the bytes and file counts of the delta sync after upstream's fields.
 */

export interface TimingPhase {
  name: string;
  ms?: number;
  skipped?: boolean;
  reason?: string;
  /** Bytes sent in this phase (upload: the compressed archive). */
  bytes?: number;
  /** Files written and paths deleted by this phase (apply). */
  changed?: number;
  deleted?: number;
}

export type RunStatus = "succeeded" | "failed" | "timed-out" | "canceled";
export type ErrorKind = "command-exit" | "timeout" | "canceled" | "provider-error";

export interface Timing {
  provider: string;
  leaseId?: string;
  slug?: string;
  syncMs: number;
  syncPhases?: TimingPhase[];
  syncSkipped: boolean;
  syncDelegated?: boolean;
  commandMs: number;
  totalMs: number;
  exitCode: number;
  runStatus?: RunStatus;
  errorKind?: ErrorKind;
  label?: string;
  /** Compressed bytes uploaded by the sync (0 for an unchanged tree). */
  syncBytesSent?: number;
  syncFilesWritten?: number;
  syncFilesDeleted?: number;
}

const ms = (value: number) => Math.max(0, Math.round(value));

function phase(p: TimingPhase): Record<string, unknown> {
  const out: Record<string, unknown> = { name: p.name };
  if (p.ms !== undefined && ms(p.ms) !== 0) out.ms = ms(p.ms);
  if (p.skipped) out.skipped = true;
  if (p.reason) out.reason = p.reason;
  if (p.bytes) out.bytes = p.bytes;
  if (p.changed !== undefined) out.changed = p.changed;
  if (p.deleted !== undefined) out.deleted = p.deleted;
  return out;
}

/** The JSON line (without newline). `endToEndMs` is always 0, as upstream writes it here. */
export function timingJson(t: Timing): string {
  const out: Record<string, unknown> = { provider: t.provider };
  if (t.leaseId) out.leaseId = t.leaseId;
  if (t.slug) out.slug = t.slug;
  out.syncMs = ms(t.syncMs);
  if (t.syncPhases && t.syncPhases.length > 0) out.syncPhases = t.syncPhases.map(phase);
  out.syncSkipped = t.syncSkipped;
  if (t.syncDelegated) out.syncDelegated = true;
  out.commandMs = ms(t.commandMs);
  out.totalMs = ms(t.totalMs);
  out.endToEndMs = 0;
  out.exitCode = t.exitCode;
  if (t.runStatus) out.runStatus = t.runStatus;
  if (t.errorKind) out.errorKind = t.errorKind;
  if (t.label) out.label = t.label;
  if (t.syncBytesSent) out.syncBytesSent = t.syncBytesSent;
  if (t.syncFilesWritten) out.syncFilesWritten = t.syncFilesWritten;
  if (t.syncFilesDeleted) out.syncFilesDeleted = t.syncFilesDeleted;
  return JSON.stringify(out);
}

/** runStatus/errorKind of an outcome, as upstream classifies it. */
export function classify(
  exitCode: number,
  how: "exited" | "interrupted" | "timeout" | "error",
): Pick<Timing, "runStatus" | "errorKind"> {
  if (how === "interrupted") return { runStatus: "canceled", errorKind: "canceled" };
  if (how === "timeout") return { runStatus: "timed-out", errorKind: "timeout" };
  if (how === "error")
    return { runStatus: "failed", errorKind: exitCode === 0 ? "provider-error" : "command-exit" };
  return exitCode === 0 ? { runStatus: "succeeded" } : { runStatus: "failed", errorKind: "command-exit" };
}
