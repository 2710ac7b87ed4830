/**
 * A storage file-system seam (server/src/storage/fs.ts) whose faults a test switches on and off
 * while a real broker runs: while `faults.<call>` is set, every such call on a path containing its
 * `path` fails with its errno code; clearing it lets the calls through again. Everything else is
 * node:fs. `injected` counts the failures, so a test can prove its fault was hit.
 */
import { type FileSystem, nodeFileSystem } from "../../../server/src/storage/fs.js";

export interface Fault {
  /** errno code, e.g. ENOSPC or EIO. */
  code: string;
  /** Only paths containing this (e.g. "/orders/0/"); every path if absent. */
  path?: string;
}

export class SwitchableFaultFs implements FileSystem {
  readonly faults: { write: Fault | null; fsync: Fault | null; open: Fault | null; read: Fault | null } = {
    write: null,
    fsync: null,
    open: null,
    read: null,
  };
  readonly injected = { write: 0, fsync: 0, open: 0, read: 0 };
  /** Positions of the writes that went through, per path (to see a rewrite after a failed fsync). */
  readonly writes: Array<{ path: string; position: number; bytes: number }> = [];
  private readonly paths = new Map<number, string>();
  private readonly base = nodeFileSystem;

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

  openSync(path: string, flags: number, mode?: number): number {
    this.check("open", path);
    const fd = this.base.openSync(path, flags, mode);
    this.paths.set(fd, path);
    return fd;
  }

  writevSync(fd: number, buffers: readonly NodeJS.ArrayBufferView[], position: number): number {
    const path = this.paths.get(fd) ?? "";
    this.check("write", path);
    const n = this.base.writevSync(fd, buffers, position);
    if (this.writes.length < 100_000) this.writes.push({ path, position, bytes: n });
    return n;
  }

  ftruncateSync(fd: number, length: number): void {
    this.base.ftruncateSync(fd, length);
  }

  fstatSync(fd: number): { size: number } {
    return this.base.fstatSync(fd);
  }

  closeSync(fd: number): void {
    this.paths.delete(fd);
    this.base.closeSync(fd);
  }

  unlinkSync(path: string): void {
    this.base.unlinkSync(path);
  }

  async read(
    fd: number,
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<number> {
    this.check("read", this.paths.get(fd) ?? "");
    return this.base.read(fd, buffer, offset, length, position);
  }

  async fsync(fd: number): Promise<void> {
    this.check("fsync", this.paths.get(fd) ?? "");
    await this.base.fsync(fd);
  }

  close(fd: number): Promise<void> {
    this.paths.delete(fd);
    return this.base.close(fd);
  }

  unlink(path: string): Promise<void> {
    return this.base.unlink(path);
  }

  rename(from: string, to: string): Promise<void> {
    return this.base.rename(from, to);
  }

  mkdir(path: string): Promise<void> {
    return this.base.mkdir(path);
  }

  readdir(path: string): Promise<string[]> {
    return this.base.readdir(path);
  }

  rm(path: string): Promise<void> {
    return this.base.rm(path);
  }
}
