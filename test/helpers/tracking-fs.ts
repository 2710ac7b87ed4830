/**
 * The base of the tests' fault-injecting file systems (test/unit/storage/helpers.ts
 * FaultyFileSystem, test/integration/helpers/fault-fs.ts SwitchableFaultFs): the storage seam
 * (server/src/storage/fs.ts) passed straight through to node:fs, remembering the path of each
 * descriptor it opened so a subclass can fault calls by path. A subclass overrides only the calls
 * it faults or counts, and calls `super` to let one through.
 *
 * Invariant: `paths` holds exactly the descriptors opened through this object and not yet closed
 * through it.
 */
import { type FileSystem, nodeFileSystem } from "../../server/src/storage/fs.js";

export class TrackingFileSystem implements FileSystem {
  /** Paths of the descriptors this file system opened (and has not closed). */
  readonly paths = new Map<number, string>();
  protected readonly base: FileSystem = nodeFileSystem;

  /** The path `fd` was opened with, or "" if it was not opened here. */
  protected pathOf(fd: number): string {
    return this.paths.get(fd) ?? "";
  }

  openSync(path: string, flags: number, mode?: number): number {
    const fd = this.base.openSync(path, flags, mode);
    this.paths.set(fd, path);
    return fd;
  }

  writevSync(fd: number, buffers: readonly NodeJS.ArrayBufferView[], position: number): number {
    return this.base.writevSync(fd, buffers, position);
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

  read(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.base.read(fd, buffer, offset, length, position);
  }

  fsync(fd: number): Promise<void> {
    return this.base.fsync(fd);
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
