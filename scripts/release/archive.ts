/**
 * Release archives that are the same bytes on every run: members in a fixed order, uid/gid 0, one
 * fixed mtime, no owner names (the tar writer of src/protocol), and gzip with a zero header mtime
 * and no file name (node:zlib writes neither).
 */
import { gzipSync } from "node:zlib";
import { type TarWriteEntry, tarChunks } from "../../src/protocol/tar.ts";

export interface ArchiveMember {
  /** Path inside the archive, `/`-separated. */
  path: string;
  data: Uint8Array;
  mode: number;
}

/** A deterministic `.tar.gz` of `members` under one top-level directory `root`. */
export async function tarGz(root: string, members: ArchiveMember[], mtime: number): Promise<Uint8Array> {
  const entries: TarWriteEntry[] = [{ type: "directory", path: root, mode: 0o755, mtime }];
  for (const member of [...members].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    entries.push({
      type: "file",
      path: `${root}/${member.path}`,
      mode: member.mode,
      size: member.data.length,
      body: member.data,
      mtime,
    });
  }
  const chunks: Uint8Array[] = [];
  for await (const chunk of tarChunks(entries)) chunks.push(chunk);
  return gzipSync(Buffer.concat(chunks), { level: 6 });
}
