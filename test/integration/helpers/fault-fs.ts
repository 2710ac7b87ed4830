/**
 * A storage file-system seam (server/src/storage/fs.ts) whose faults a test switches on and off
 * while a real broker runs: while `faults.<call>` is set, every such call on a path containing its
 * `path` fails with its errno code; clearing it lets the calls through again. Everything else is
 * node:fs. `injected` counts the failures, so a test can prove its fault was hit.
 */
import { TrackingFileSystem } from "../../helpers/tracking-fs.js";

export interface Fault {
  /** errno code, e.g. ENOSPC or EIO. */
  code: string;
  /** Only paths containing this (e.g. "/orders/0/"); every path if absent. */
  path?: string;
}

export class SwitchableFaultFs extends TrackingFileSystem {
  readonly faults: { write: Fault | null; fsync: Fault | null; open: Fault | null; read: Fault | null } = {
    write: null,
    fsync: null,
    open: null,
    read: null,
  };
  readonly injected = { write: 0, fsync: 0, open: 0, read: 0 };
  /** Positions of the writes that went through, per path (to see a rewrite after a failed fsync). */
  readonly writes: Array<{ path: string; position: number; bytes: number }> = [];

  private check(call: "write" | "fsync" | "open" | "read", path: string): void {
    const fault = this.faults[call];
    if (fault === null || (fault.path !== undefined && !path.includes(fault.path))) return;
    this.injected[call]++;
    throw Object.assign(new Error(`${fault.code}: injected ${call} fault, ${path}`), {
      code: fault.code,
      syscall: call,
      path,
    });
  }

  override openSync(path: string, flags: number, mode?: number): number {
    this.check("open", path);
    return super.openSync(path, flags, mode);
  }

  override writevSync(fd: number, buffers: readonly NodeJS.ArrayBufferView[], position: number): number {
    const path = this.pathOf(fd);
    this.check("write", path);
    const n = super.writevSync(fd, buffers, position);
    if (this.writes.length < 100_000) this.writes.push({ path, position, bytes: n });
    return n;
  }

  override async read(
    fd: number,
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<number> {
    this.check("read", this.pathOf(fd));
    return super.read(fd, buffer, offset, length, position);
  }

  override async fsync(fd: number): Promise<void> {
    this.check("fsync", this.pathOf(fd));
    await super.fsync(fd);
  }
}
