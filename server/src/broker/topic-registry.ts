/**
 * The topics of this broker and their partitions, on disk under `<data>/topics/` (DESIGN §4):
 *
 *   topics/<topic>/topic.json   {"version":1,"partitions":N,"config":{"retention.ms":...}} (overrides only)
 *   topics/<topic>/<p>/         one partition log per directory (storage/log.ts)
 *   trash/<topic>-<time>/       a deleted topic, removed in the background and on the next start
 *
 * Invariants and crash safety:
 * - topic.json is written last on create (temp file, fsync, rename, fsync dir): a topic directory
 *   without topic.json is an interrupted create and is removed on open.
 * - Delete is one rename of the topic directory into trash/, so a crash leaves the topic either
 *   whole or gone; trash/ is emptied on open.
 * - Names are validated (topic-name.ts) before they touch the file system.
 * - Every file operation goes through the FileSystem seam (storage/fs.ts, default node:fs), so
 *   fault injection and crash tests reach topic create/delete as they reach segment files.
 * - Creates and deletes of one name are serialized, so two concurrent auto-creates make one topic.
 * - Adding partitions opens the new partition directories first and rewrites topic.json last
 *   (durably), so a crash leaves the old count; directories past the count in topic.json are
 *   leftovers of an interrupted add and are removed when partitions are next added.
 * - Listeners (onChange) hear of every create, delete and partition add after it took effect.
 */

import { randomUUID } from "node:crypto";
import { join } from "node:path";
import type { Clock } from "../clock.js";
import { SETTINGS, type TopicSettings } from "../config.js";
import type { Logger } from "../logger.js";
import { type FileSystem, nodeFileSystem } from "../storage/fs.js";
import { openLog } from "../storage/log.js";
import { readSmallFile, syncDir, writeFileDurably } from "./durable-fs.js";
import {
  InvalidRequestError,
  LimitExceededError,
  PartitionNotFoundError,
  TopicExistsError,
  TopicNotFoundError,
} from "./errors.js";
import { Partition, type PartitionHooks } from "./partition.js";
import { validateTopicName } from "./topic-name.js";

export const MAX_PARTITIONS = 10_000;

export interface Topic {
  readonly name: string;
  readonly partitions: readonly Partition[];
  /** Only what CreateTopic set; the rest follows the broker defaults. */
  readonly overrides: Partial<TopicSettings>;
  /** The effective settings: defaults with overrides applied. */
  readonly settings: TopicSettings;
}

/** What changed about a topic; consumer groups rebalance on it. */
export type TopicChange = { kind: "created" | "deleted" | "partitions-added"; topic: string };

export interface TopicRegistryOptions {
  dataDir: string;
  defaults: TopicSettings;
  clock: Clock;
  logger: Logger;
  cleanShutdown: boolean;
  /** The file-system seam of every partition log (default node:fs). */
  fs?: FileSystem | undefined;
  /** After a failed fsync, how often a partition tries the disk again (storage.fault.retry.ms). */
  faultRetryMs?: number | undefined;
  /** Most partitions one topic may have (max.partitions.per.topic; default MAX_PARTITIONS). */
  maxPartitionsPerTopic?: number | undefined;
}

const TOPIC_FILE = "topic.json";

/** Setting name in TopicSettings ↔ dotted key, from the one table in config.ts. */
const TOPIC_KEYS = new Map<keyof TopicSettings, string>(
  SETTINGS.filter((s) => s.target.startsWith("topic.")).map((s) => [
    s.target.slice("topic.".length) as keyof TopicSettings,
    s.key,
  ]),
);

export class TopicRegistry {
  private readonly topics = new Map<string, Topic>();
  private readonly pending = new Map<string, Promise<unknown>>();
  /** Shared by every partition: how metrics/ watches fsyncs. */
  readonly hooks: PartitionHooks = {};
  private readonly listeners = new Set<(change: TopicChange) => void>();
  private readonly topicsDir: string;
  private readonly trashDir: string;
  /** The seam every file operation goes through (topic logs and topic metadata alike). */
  private readonly fs: FileSystem;

  private constructor(private readonly options: TopicRegistryOptions) {
    this.topicsDir = join(options.dataDir, "topics");
    this.trashDir = join(options.dataDir, "trash");
    this.fs = options.fs ?? nodeFileSystem;
  }

  static async open(options: TopicRegistryOptions): Promise<TopicRegistry> {
    const registry = new TopicRegistry(options);
    await registry.load();
    return registry;
  }

  private async load(): Promise<void> {
    const { logger } = this.options;
    await this.fs.mkdir(this.topicsDir);
    await this.fs.rm(this.trashDir);
    for (const name of (await this.fs.readdir(this.topicsDir)).sort()) {
      const dir = join(this.topicsDir, name);
      let meta: { partitions: number; config?: Record<string, unknown> };
      try {
        meta = JSON.parse(await readSmallFile(this.fs, join(dir, TOPIC_FILE)));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ENOTDIR") continue; // a plain file, not a topic directory
        if (code !== "ENOENT") throw err;
        logger.warn({ topic: name, dir }, "removing a topic whose create was interrupted");
        await this.fs.rm(dir);
        continue;
      }
      const overrides = fromDotted(meta.config ?? {});
      const topic = await this.openTopic(name, meta.partitions, overrides);
      this.topics.set(name, topic);
    }
    logger.info({ topics: this.topics.size }, "topics loaded");
  }

  /** Calls `listener` after every create, delete and partition add; returns the unsubscribe. */
  onChange(listener: (change: TopicChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(change: TopicChange): void {
    for (const l of [...this.listeners]) {
      try {
        l(change);
      } catch (err) {
        this.options.logger.error({ err, change }, "topic change listener failed");
      }
    }
  }

  private async openTopic(
    name: string,
    partitionCount: number,
    overrides: Partial<TopicSettings>,
    from = 0,
  ): Promise<Topic> {
    const settings = { ...this.options.defaults, ...overrides };
    const partitions: Partition[] = [];
    try {
      for (let p = from; p < partitionCount; p++) {
        const logger = this.options.logger.child({ topic: name, partition: p });
        const log = await openLog({
          dir: join(this.topicsDir, name, String(p)),
          config: {
            segmentBytes: settings.segmentBytes,
            segmentMs: settings.segmentMs,
            retentionMs: settings.retentionMs,
            retentionBytes: settings.retentionBytes,
            indexIntervalBytes: settings.indexIntervalBytes,
          },
          clock: this.options.clock,
          logger,
          cleanShutdown: this.options.cleanShutdown,
          fs: this.options.fs,
        });
        const { truncatedBytes, rebuiltIndexes } = log.recovery;
        if (truncatedBytes > 0 || rebuiltIndexes > 0)
          logger.warn({ truncatedBytes, rebuiltIndexes }, "log recovered");
        partitions.push(new Partition(name, p, log, settings, logger, this.hooks, this.options.faultRetryMs));
      }
    } catch (err) {
      // Opening failed part-way (e.g. EMFILE): release what was opened, or the descriptors leak.
      await Promise.all(partitions.map((p) => p.close().catch(() => {})));
      throw err;
    }
    return { name, partitions, overrides, settings };
  }

  get(name: string): Topic | undefined {
    return this.topics.get(name);
  }

  /** The topic, or TopicNotFoundError. Validates the name first. */
  require(name: string): Topic {
    validateTopicName(name);
    const topic = this.topics.get(name);
    if (!topic) throw new TopicNotFoundError(name);
    return topic;
  }

  /** The partition, or TopicNotFoundError / PartitionNotFoundError. */
  partition(name: string, partition: number): Partition {
    const topic = this.require(name);
    const p = topic.partitions[partition];
    if (!Number.isInteger(partition) || partition < 0 || !p) {
      throw new PartitionNotFoundError(name, partition, topic.partitions.length);
    }
    return p;
  }

  list(): Topic[] {
    return [...this.topics.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Creates a topic; TopicExistsError if it exists. */
  create(name: string, partitions: number, overrides: Partial<TopicSettings> = {}): Promise<Topic> {
    validateTopicName(name);
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS) {
      throw new InvalidRequestError(`partitions must be between 1 and ${MAX_PARTITIONS}, not ${partitions}`);
    }
    this.checkPartitionLimit(name, partitions);
    return this.serialized(name, async () => {
      if (this.topics.has(name)) throw new TopicExistsError(name);
      const dir = join(this.topicsDir, name);
      await this.fs.rm(dir); // leftovers of an interrupted create
      await this.fs.mkdir(dir);
      await syncDir(this.fs, this.topicsDir);
      let topic: Topic;
      try {
        topic = await this.openTopic(name, partitions, overrides);
        await writeFileDurably(
          this.fs,
          dir,
          TOPIC_FILE,
          `${JSON.stringify({ version: 1, partitions, config: toDotted(overrides) }, null, 2)}\n`,
        );
      } catch (err) {
        // Without topic.json the directory is an interrupted create: remove it now rather than on
        // the next start, so a retry can succeed.
        await this.fs.rm(dir).catch(() => {});
        throw err;
      }
      this.topics.set(name, topic);
      this.options.logger.info({ topic: name, partitions }, "topic created");
      this.emit({ kind: "created", topic: name });
      return topic;
    });
  }

  /**
   * Each partition keeps 3 files open and costs memory: a topic may have at most
   * max.partitions.per.topic of them (LimitExceededError, i.e. RESOURCE_EXHAUSTED, naming it).
   */
  private checkPartitionLimit(name: string, partitions: number): void {
    const max = this.options.maxPartitionsPerTopic ?? MAX_PARTITIONS;
    if (partitions > max) {
      throw new LimitExceededError(
        `topic "${name}" would have ${partitions} partitions, more than this broker allows (max.partitions.per.topic = ${max}); use fewer partitions or raise the setting`,
      );
    }
  }

  /** Raises a topic's partition count to `partitions` (never lowers it). */
  addPartitions(name: string, partitions: number): Promise<Topic> {
    validateTopicName(name);
    return this.serialized(name, async () => {
      const topic = this.topics.get(name);
      if (!topic) throw new TopicNotFoundError(name);
      const current = topic.partitions.length;
      if (!Number.isInteger(partitions) || partitions <= current || partitions > MAX_PARTITIONS) {
        throw new InvalidRequestError(
          `topic "${name}" has ${current} partitions; the new count must be larger, and at most ${MAX_PARTITIONS}, not ${partitions}`,
        );
      }
      this.checkPartitionLimit(name, partitions);
      const dir = join(this.topicsDir, name);
      for (let p = current; p < partitions; p++) {
        await this.fs.rm(join(dir, String(p))); // an interrupted add's leftovers
      }
      const added = await this.openTopic(name, partitions, topic.overrides, current);
      try {
        await writeFileDurably(
          this.fs,
          dir,
          TOPIC_FILE,
          `${JSON.stringify({ version: 1, partitions, config: toDotted(topic.overrides) }, null, 2)}\n`,
        );
      } catch (err) {
        await Promise.all(added.partitions.map((p) => p.destroy().catch(() => {})));
        throw err;
      }
      const grown: Topic = { ...topic, partitions: [...topic.partitions, ...added.partitions] };
      this.topics.set(name, grown);
      this.options.logger.info({ topic: name, from: current, to: partitions }, "partitions added");
      this.emit({ kind: "partitions-added", topic: name });
      return grown;
    });
  }

  /** The topic, creating it with the default partition count if it does not exist. */
  async getOrCreate(name: string, partitions: number): Promise<Topic> {
    const existing = this.topics.get(name);
    if (existing) return existing;
    validateTopicName(name);
    await this.pending.get(name)?.catch(() => {});
    return (
      this.topics.get(name) ??
      this.create(name, partitions).catch((err) => {
        if (err instanceof TopicExistsError) return this.require(name);
        throw err;
      })
    );
  }

  /**
   * Deletes a topic and its data; open Fetch streams on it end. The topic leaves the registry
   * only once its directory is in trash/; if the move fails, its partitions are reopened and it
   * stays, whole, so the registry never disagrees with the disk.
   */
  delete(name: string): Promise<void> {
    validateTopicName(name);
    return this.serialized(name, async () => {
      const topic = this.topics.get(name);
      if (!topic) throw new TopicNotFoundError(name);
      await Promise.all(topic.partitions.map((p) => p.close()));
      await this.fs.mkdir(this.trashDir);
      // A short unique name: `<topic>-<time>` can pass the 255-byte file-name limit.
      const trashed = join(this.trashDir, `${Date.now().toString(36)}-${randomUUID()}`);
      try {
        await this.fs.rename(join(this.topicsDir, name), trashed);
      } catch (err) {
        this.topics.set(name, await this.openTopic(name, topic.partitions.length, topic.overrides));
        throw err;
      }
      this.topics.delete(name);
      this.emit({ kind: "deleted", topic: name });
      await syncDir(this.fs, this.topicsDir);
      this.options.logger.info({ topic: name }, "topic deleted");
      this.fs
        .rm(trashed)
        .catch((err) =>
          this.options.logger.warn({ err, dir: trashed }, "could not remove a deleted topic's files"),
        );
    });
  }

  /** Runs retention on every partition; returns segments deleted. */
  async applyRetention(): Promise<number> {
    let deleted = 0;
    for (const topic of this.topics.values()) {
      for (const p of topic.partitions) {
        if (p.isClosed) continue;
        try {
          deleted += await p.applyRetention();
        } catch (err) {
          this.options.logger.error({ err, topic: topic.name, partition: p.index }, "retention failed");
        }
      }
    }
    return deleted;
  }

  /** Flushes and closes every partition. */
  async close(): Promise<void> {
    await Promise.all([...this.pending.values()].map((p) => p.catch(() => {})));
    const all = [...this.topics.values()].flatMap((t) => t.partitions);
    await Promise.all(all.map((p) => p.close()));
  }

  private serialized<T>(name: string, work: () => Promise<T>): Promise<T> {
    const previous = this.pending.get(name) ?? Promise.resolve();
    const next = previous.catch(() => {}).then(work);
    this.pending.set(name, next);
    const clear = () => {
      if (this.pending.get(name) === next) this.pending.delete(name);
    };
    next.then(clear, clear);
    return next;
  }
}

function toDotted(overrides: Partial<TopicSettings>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(overrides)) {
    if (v !== undefined) out[TOPIC_KEYS.get(k as keyof TopicSettings) ?? k] = v;
  }
  return out;
}

function fromDotted(config: Record<string, unknown>): Partial<TopicSettings> {
  const out: Record<string, unknown> = {};
  for (const [field, key] of TOPIC_KEYS) {
    if (config[key] !== undefined) out[field] = config[key];
  }
  return out as Partial<TopicSettings>;
}
