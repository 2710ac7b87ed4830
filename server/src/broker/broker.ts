/**
 * The broker core: topics, metadata and background work, with no knowledge of gRPC.
 *
 *   <data>/meta/broker.json     {"brokerId":0,"clusterId":"<uuid>"} — stable across restarts
 *   <data>/meta/clean-shutdown  present only between a clean close and the next open
 *   <data>/topics/, <data>/groups/  topic logs (topic-registry.ts), group offsets (groups/)
 *
 * Open order matters: the clean-shutdown marker is read (it decides whether logs are scanned for
 * torn writes), then removed and the removal fsynced *before* any write is accepted, so a crash
 * after this point is always followed by recovery. Close writes the marker only after every log
 * has been fsynced and closed.
 */
import { randomUUID } from "node:crypto";
import { join, resolve } from "node:path";
import { type Clock, systemClock } from "../clock.js";
import type { BrokerConfig } from "../config.js";
import { GroupCoordinator } from "../groups/coordinator.js";
import type { Logger } from "../logger.js";
import { type FileSystem, nodeFileSystem } from "../storage/fs.js";
import { readSmallFile, syncDir, writeFileDurably } from "./durable-fs.js";
import { TopicRegistry } from "./topic-registry.js";

const CLEAN_MARKER = "clean-shutdown";

export interface BrokerMeta {
  brokerId: number;
  clusterId: string;
}

export class BrokerCore {
  private retentionTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly config: BrokerConfig,
    readonly topics: TopicRegistry,
    readonly groups: GroupCoordinator,
    readonly meta: BrokerMeta,
    readonly clock: Clock,
    private readonly logger: Logger,
    /** Whether the previous run ended cleanly (false means logs were scanned). */
    readonly recoveredFromCleanShutdown: boolean,
    private readonly fs: FileSystem,
  ) {}

  /**
   * `fs` is the file-system seam of every file the broker touches: topic logs, topic metadata,
   * meta/ and the group offsets (default node:fs).
   */
  static async open(
    config: BrokerConfig,
    logger: Logger,
    clock: Clock = systemClock,
    fs: FileSystem = nodeFileSystem,
  ): Promise<BrokerCore> {
    const dataDir = resolve(config.dataDir);
    const metaDir = join(dataDir, "meta");
    await fs.mkdir(metaDir);
    const meta = await loadMeta(fs, metaDir);
    const marker = join(metaDir, CLEAN_MARKER);
    const cleanShutdown = (await fs.readdir(metaDir)).includes(CLEAN_MARKER);
    const isNew = !(await fs.readdir(dataDir)).includes("topics");
    if (!cleanShutdown && !isNew)
      logger.warn({ dataDir }, "previous run did not stop cleanly; recovering logs");
    await fs.rm(marker);
    await syncDir(fs, metaDir);
    const topics = await TopicRegistry.open({
      dataDir,
      defaults: config.topicDefaults,
      clock,
      logger: logger.child({ component: "log" }),
      cleanShutdown: cleanShutdown || isNew,
      fs,
      faultRetryMs: config.storageFaultRetryMs,
      maxPartitionsPerTopic: config.maxPartitionsPerTopic,
    });
    let groups: GroupCoordinator;
    try {
      groups = await GroupCoordinator.open({
        dataDir,
        topics,
        config,
        clock,
        logger,
        cleanShutdown: cleanShutdown || isNew,
        fs,
      });
    } catch (err) {
      await topics.close().catch(() => {});
      throw err;
    }
    const core = new BrokerCore(config, topics, groups, meta, clock, logger, cleanShutdown, fs);
    core.scheduleRetention();
    return core;
  }

  private scheduleRetention(): void {
    this.retentionTimer = setInterval(() => {
      this.topics
        .applyRetention()
        .then((deleted) => {
          if (deleted > 0) this.logger.info({ segments: deleted }, "retention deleted segments");
        })
        .catch((err) => this.logger.error({ err }, "retention failed"));
    }, this.config.retentionCheckIntervalMs);
    this.retentionTimer.unref();
  }

  /** Fsyncs and closes every log, then writes the clean-shutdown marker. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.retentionTimer);
      await Promise.all([this.groups.close(), this.topics.close()]);
      const metaDir = join(resolve(this.config.dataDir), "meta");
      await writeFileDurably(this.fs, metaDir, CLEAN_MARKER, `${new Date(this.clock.now()).toISOString()}\n`);
    })();
    return this.closing;
  }
}

async function loadMeta(fs: FileSystem, metaDir: string): Promise<BrokerMeta> {
  try {
    return JSON.parse(await readSmallFile(fs, join(metaDir, "broker.json"))) as BrokerMeta;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    const meta: BrokerMeta = { brokerId: 0, clusterId: randomUUID() };
    await writeFileDurably(fs, metaDir, "broker.json", `${JSON.stringify(meta)}\n`);
    return meta;
  }
}
