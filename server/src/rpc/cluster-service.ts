/** ClusterService: the brokers and the leader of every partition (one broker in single-node mode). */
import type { UntypedServiceImplementation } from "@grpc/grpc-js";
import type { GetMetadataRequest, GetMetadataResponse } from "../../../clients/ts/src/gen/rill/v1/cluster.js";
import type { RpcContext } from "./context.js";
import { unary } from "./unary.js";

export interface AdvertisedAddress {
  host: string;
  port: number;
}

export function clusterServiceImplementation(
  ctx: RpcContext,
  advertised: () => AdvertisedAddress,
): UntypedServiceImplementation {
  return {
    getMetadata: unary(ctx, (c, req: GetMetadataRequest): GetMetadataResponse => {
      const { meta, topics } = c.core;
      const chosen = req.topics.length > 0 ? req.topics.map((name) => topics.require(name)) : topics.list();
      const { host, port } = advertised();
      return {
        clusterId: meta.clusterId,
        brokers: [{ brokerId: meta.brokerId, host, port }],
        topics: chosen.map((t) => ({
          topic: t.name,
          partitions: t.partitions.map((p) => ({ partition: p.index, leaderId: meta.brokerId })),
        })),
      };
    }),
  };
}
